"""The Kedro spaceflights tutorial's nodes, used by `Datafile.example`."""
