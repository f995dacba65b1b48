"""The Datafile grammar, shipped inside the wheel as `datamake.grammar`."""
