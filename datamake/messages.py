"""Every message datamake tells the user about their input, in one table: a stable code
per kind of error or warning, and the text of its message, help and note.

A call site names the kind and gives the facts (`error("unknown-name", span, name=n)`);
this table says how they are told, so a message is written once, `--check --json` and
tests can match the code instead of the text, and docs/errors.md lists them all.

Codes are short lowercase slugs (`unknown-name`, `include-cycle`): stable once
released, never reused for another meaning. To add one: a line here, a case in
tests/test_messages.py (whose golden file it then writes), a line in docs/errors.md.

Templates are `str.format` strings over the call's fields. A `help` (or `note`) may be
a tuple of alternatives: the first whose fields are all given (not None) is used, and
when none is, there is no help; that is how "did you mean" falls back to a plain hint.
"""
from __future__ import annotations

from typing import Any, NamedTuple


class Message(NamedTuple):
    text: str
    help: str | tuple[str, ...] | None = None
    note: str | tuple[str, ...] | None = None
    severity: str = "error"  # "error" | "warning"


_SPACES = "indent with spaces: recipes are Python, and Python blocks in a Datafile are " \
          "indented with spaces (not tabs as in Make)"
_EACH_ONE_RULE = "each output has exactly one rule; rename one of them"
_WHERE = 'a location is a file or folder of its own, e.g. `"data/01_raw/NAME.csv"`'
_PARAM_LITERAL = "a parameter's value is a Python literal; continuation lines are indented"
_OPTIONS = "options are written `(KEY=VALUE, ...)` with literal values"
_SPLIT = "split the expression into several statements"
_PLAIN = "a params file holds plain settings; keep data in datasets, which rules read"
_MEAN = "did you mean `{best}`?"
_HISTORY = "`datamake --history {name}` lists its versions"

MESSAGES: dict[str, Message] = {
    # -- reading a Datafile -----------------------------------------------------------
    "no-datafile": Message("no Datafile at `{path}`", "create one, or name it with `-f FILE`"),
    "datafile-not-regular": Message("`{path}` is not a regular file", "a Datafile is a text file"),
    "datafile-too-big": Message(
        "`{path}` is larger than {mb} MB",
        "a Datafile this big is not written by hand: generate fewer, bigger rules (a pattern "
        "rule covers many partitions)"),
    "datafile-unreadable": Message("cannot read `{path}`: {reason}", "check the file's permissions"),
    "datafile-not-utf8": Message("`{path}` is not UTF-8 text: byte 0x{byte:02x} ({reason})",
                                 "a Datafile is UTF-8 text: save it as UTF-8"),
    "nul-character": Message("a NUL character in the Datafile",
                             "a Datafile is text; is this a binary file?"),
    # -- includes and the shared cache ------------------------------------------------
    "include-cycle": Message("include cycle: {loop}",
                             "a Datafile cannot include itself, directly or not"),
    "include-missing": Message("no Datafile at `{path}` to include",
                               "the path is relative to the including Datafile's folder"),
    "cache-in-include": Message("`cache` belongs in the top Datafile",
                                "move it to the Datafile that includes this one"),
    "cache-twice": Message("a second `cache` line", "a Datafile names at most one shared cache"),
    # -- syntax -----------------------------------------------------------------------
    "tab-indent": Message("tab in indentation", _SPACES),
    "unclosed-bracket": Message("`{bracket}` is never closed in the value of parameter `{name}`",
                                "indent the continuation lines of a value that spans lines"),
    "unexpected-indent": Message(
        "unexpected indentation",
        "only a recipe (right below its rule) or a `python:` block is indented"),
    "unexpected-character": Message("unexpected character `{char}`",
                                    "names are Python identifiers; locations go in quotes"),
    "unexpected-block": Message(
        "unexpected indented block",
        "an indented block must follow a rule (`OUT: IN`) or `python:`"),
    "expected-colon": Message(
        "expected `:` after the outputs of a rule, found {found}",
        "a rule is written `OUTPUTS: INPUTS`, e.g. `model_input: companies shuttles`"),
    "param-expected-equals": Message("expected `=` after the parameter name, found {found}",
                                     "write `param NAME = VALUE`"),
    "dataset-expected-equals": Message("expected `=` after the dataset name, found {found}",
                                       'write `dataset NAME = "LOCATION"`'),
    "keyword-as-name": Message("`{word}` is a keyword and cannot name a rule's output",
                               "choose another name"),
    "expected-location": Message("expected a quoted location, found {found}",
                                 ('put it in quotes: `"{shown}"`',
                                  "put the file name or URL in quotes")),
    "expected-key": Message("expected a partition key name, found {found}",
                            "a partition is written `name[key]`"),
    "unexpected-token": Message("unexpected {found}", "expected {expected}"),
    "name-too-long": Message(
        "a name of {length} characters (at most {limit})",
        "a name becomes a file name (`.datamake/data/NAME.pkl`): choose a shorter one"),
    "bad-escape": Message("invalid escape in a quoted string: {reason}",
                          "write a backslash as `\\\\` (or `/` in a path)"),
    # -- parameters -------------------------------------------------------------------
    "param-syntax": Message("invalid value for parameter `{name}`: {reason}", _PARAM_LITERAL),
    "param-too-deep": Message(
        "the value of parameter `{name}` is nested more than {depth} levels deep",
        "a parameter's value is a Python literal; compute anything deeper in a rule"),
    "param-not-literal": Message(
        "the value of parameter `{name}` is not a Python literal",
        "use numbers, strings, lists, dicts, tuples, booleans or None; compute anything "
        "else in a rule"),
    "param-too-big": Message("the value of parameter `{name}` {problem}",
                             "a parameter holds settings; compute anything bigger in a rule"),
    # -- format options (`as csv(sep=";")`) -----------------------------------------------
    "option-syntax": Message("invalid format options: {reason}",
                             "options are written `(KEY=VALUE, ...)`"),
    "option-too-deep": Message("a format option is nested more than {depth} levels deep",
                               _OPTIONS),
    "option-positional": Message("format options must be named",
                                 'write `KEY=VALUE`, e.g. `as csv(sep=";")`'),
    "option-unpacked": Message("format options must be named"),
    "option-not-literal": Message("the value of option `{option}` is not a Python literal"),
    "option-too-big": Message("the value of option `{option}` {problem}", _OPTIONS),
    "unknown-format": Message("unknown format `{format}`",
                              (_MEAN, "known formats: {known}")),
    "format-plugin-broken": Message("format plugin `{plugin}` failed to load: {reason}"),
    "format-option-unknown": Message("format `{format}` of `{name}` has no option `{key}`",
                                     (_MEAN, "its options: {options}",
                                      "format `{format}` takes no options")),
    "extension-unknown": Message(
        "no format is known for the extension `{ext}` of `{name}`",
        "give the format (`as csv`), or `as path` for a file the recipe writes itself; "
        "known extensions: {known} (and {compressions} after one, for compression)"),
    "same-location": Message("`{name}` and `{other}` are at one location, `{location}`",
                             "each dataset has a location of its own; writing one would "
                             "overwrite the other", "`{other}` is declared at {where}"),
    # -- Python in the Datafile -------------------------------------------------------
    "python-syntax": Message("Python syntax error in {where}: {reason}"),
    "python-block-too-deep": Message(
        "the `python:` block is nested more than {depth} levels deep", _SPLIT),
    "recipe-too-deep": Message("the recipe of `{rule}` is nested more than {depth} levels deep",
                               _SPLIT),
    "mixed-recipe": Message(
        "a recipe mixes shell lines (`$ ...`) and Python lines",
        "start every line of a shell recipe with `$ `, or write the whole recipe in Python"),
    # -- params files -----------------------------------------------------------------
    "params-not-regular": Message("params file `{path}` is not a regular file",
                                  "name a YAML, TOML or JSON file"),
    "params-too-big": Message("params file `{path}` is larger than {limit:,} bytes", _PLAIN),
    "params-unreadable": Message("cannot read params file `{path}`: {reason}",
                                 "the path is relative to the Datafile's folder"),
    "params-unknown-type": Message("params file `{path}` is not YAML, TOML or JSON",
                                   "name it `.yaml`, `.yml`, `.toml` or `.json`"),
    "params-too-deep": Message("params file `{path}` is nested more than {depth} levels deep",
                               _PLAIN),
    "params-unparsable": Message("params file `{path}` cannot be parsed: {reason}",
                                 "it is read as {kind}, from its extension"),
    "params-not-mapping": Message("params file `{path}` must hold a mapping of names to values"),
    "params-too-big-value": Message("params file `{path}` {problem}", _PLAIN),
    "params-bad-key": Message(
        "params file `{path}`: key `{key}` is not a valid name",
        "top-level keys become parameter names (Python identifiers of at most {limit} "
        "characters)"),
    # -- names ------------------------------------------------------------------------
    "two-rules-write": Message("two rules write `{name}`", _EACH_ONE_RULE,
                               "`{name}` is also written by the rule at {other}"),
    "rule-writes-alias": Message("two rules write `{name}`", _EACH_ONE_RULE,
                                 "`{name}` is also a rule at {other}"),
    "defined-twice": Message(
        "`{name}` is defined twice",
        "every parameter, dataset and output has one name in one namespace; rename one of them",
        "first defined as a {kind} at {other}"),
    "rule-writes-param": Message("`{name}` is a parameter; a rule cannot write it",
                                 "give the rule's output another name"),
    "alias-names": Message("a rule without a recipe has one name",
                           "an alias (a rule with no recipe) is written `NAME: INPUTS`"),
    "unknown-name": Message(
        "unknown name `{name}`",
        (_MEAN, "declare it with `dataset`, `param`, or a rule that writes it")),
    "param-has-no-partitions": Message("`{name}` is a parameter; it has no partitions"),
    "param-has-no-versions": Message("`{name}` is a parameter; it has no versions"),
    "cycle": Message("cycle: {loop}", "a rule cannot depend, directly or not, on its own "
                                      "output; break the loop"),
    # -- what a recipe uses -----------------------------------------------------------
    "not-an-input": Message("the recipe of `{rule}` uses `{name}`, which is not one of its inputs",
                            "add `{name}` to the inputs: `{header}`"),
    "unknown-shell-name": Message("unknown name `{{{name}}}` in a shell recipe",
                                  (_MEAN, "write `{{{{` and `}}}}` for literal braces")),
    "reads-own-output": Message(
        "the recipe of `{rule}` reads its own output `{name}`",
        "a recipe returns its outputs' values; only `as path` outputs are bound in the recipe "
        "(to the path to write)"),
    "uses-alias": Message("the recipe of `{rule}` uses `{name}`, a rule without a recipe, "
                          "which has no value",
                          "list the names `{name}` stands for as inputs of `{rule}`"),
    "defined-nowhere": Message(
        "the recipe of `{rule}` uses `{name}`, which is defined nowhere",
        (_MEAN, "list it as an input of `{rule}`, define or import it in a `python:` block, "
                "or import it in the recipe")),
    "same-local-name": Message(
        "two inputs of `{rule}` are both called `{local}` in the recipe",
        "rename one with `as`, e.g. `{name} as other`"),
    # -- locations --------------------------------------------------------------------
    "location-empty": Message("an empty location", _WHERE),
    "location-bad-variable": Message(
        "`${{` starts no environment variable",
        "write `${{NAME}}` (a letter or `_`, then letters, digits or `_`)"),
    "location-no-path": Message("`{location}` has no path",
                                'name the object, e.g. `"{scheme}bucket/data/NAME.csv"`'),
    "location-url-placeholders": Message(
        "`{location}` has nothing but placeholders after `{scheme}`",
        'name the object, e.g. `"{scheme}bucket/data/NAME.csv"`'),
    "location-home": Message("`{location}` names a home folder, not a dataset", _WHERE),
    "location-root": Message("`{location}` names the root of the filesystem, not a dataset",
                             _WHERE),
    "location-project": Message("`{location}` names the Datafile's own folder, not a dataset",
                                _WHERE),
    "location-above": Message("`{location}` names a folder above the Datafile, not a dataset",
                               _WHERE),
    "location-in-state": Message("`{location}` is inside `.datamake/`, datamake's own folder",
                                 "choose a location outside it"),
    "location-placeholders-only": Message(
        "`{location}` has nothing but placeholders: its partitions would be every file in "
        "the folder",
        'put the partitions in a folder of their own, e.g. `"data/NAME/{{key}}.csv"`'),
    "location-adjacent-placeholders": Message(
        "two placeholders side by side in `{location}` cannot be told apart",
        "put a separator between them, e.g. `{{a}}_{{b}}`"),
    # -- partitions (`[key]`) ---------------------------------------------------------
    "pattern-keys-differ": Message("the outputs of a pattern rule share one key",
                                   "write every output as `name[key]` with the same key"),
    "pattern-yields": Message(
        "a pattern rule's recipe returns one partition; `{rule}` yields",
        "yield `(key, value)` pairs from a plain rule (`out: inputs`), or return the value here"),
    "yield-outputs": Message("a recipe that yields writes exactly one partitioned output",
                             "split the rule in two"),
    "output-not-partitioned": Message(
        "`{name}` is not partitioned, but its rule writes partitions",
        'give its location a `{{{key}}}` placeholder, e.g. `"data/{name}/{{{key}}}.csv"`'),
    "output-written-whole": Message(
        "`{name}` is partitioned (its location has `{{{placeholder}}}`), but its rule writes "
        "it whole",
        "write a pattern rule `{name}[key]: input[key] ...`, or a recipe that yields "
        "`(key, value)` pairs"),
    "key-outside-pattern": Message(
        "`{name}[{key}]` picks one partition, but `{rule}` is not a pattern rule",
        "write the outputs as `{rule}[{key}]`, or use `{name}` whole"),
    "key-differs": Message("partition key `{key}` differs from the rule's key `{rule_key}`",
                           "write `{name}[{rule_key}]`"),
    "key-not-partitioned": Message(
        "`{name}` is not partitioned: it has no `[{key}]`",
        'give its location a placeholder, e.g. `"data/{name}/{{{rule_key}}}.csv"`'),
    "placeholder-counts": Message(
        "the partitioned datasets of `{rule}` have different numbers of placeholders",
        "a pattern rule maps partitions one to one: give its inputs and outputs the same "
        "placeholders"),
    "pattern-without-input": Message(
        "pattern rule `{rule}[{key}]` has no input `name[{key}]` to take its partitions from",
        "add a partitioned input, e.g. `{rule}[{key}]: source[{key}]`"),
    # -- versions (`@version`) --------------------------------------------------------
    "version-not-versioned": Message("`{name}@{version}` pins a version, but `{name}` is not "
                                     "versioned",
                                     "declare it `dataset {name} = \"...\" versioned`"),
    "version-partitioned": Message("`{name}` is partitioned: its versions cannot be pinned"),
    "versioned-partitioned": Message(
        "`{name}` is partitioned and versioned; only whole datasets keep versions",
        "drop `versioned`: each partition already records what it was built from"),
    "no-value": Message("the recipe of `{rule}` ends with an assignment, so it gives no value",
                        "end it with the value to store: an expression on its own line (e.g. "
                        "the name just assigned)"),
    "params-file-env-unset": Message("params file `{path}`: environment variable `{var}` is "
                                     "not set", "set it, e.g. `export {var}=...`"),
    # -- notebook recipes ---------------------------------------------------------------
    "notebook-one-line": Message("a notebook recipe is one line, `notebook \"FILE\"`, and "
                                 "nothing else",
                                 "put the code in the notebook, or write the recipe in Python"),
    "notebook-extension": Message("`{path}` is not a notebook: a notebook recipe names a `.py` "
                                  "(Jupytext percent format) or an `.ipynb` file",
                                  "e.g. `notebook \"notebooks/evaluate.py\"`"),
    "notebook-missing": Message("no notebook at `{path}`",
                                "the path is relative to the Datafile's folder: `{folder}`"),
    "notebook-unreadable": Message("{reason}", ("{hint}",)),
    "notebook-same-local": Message("two inputs of `{rule}` are both called `{local}` in the "
                                   "notebook", "rename one with `as`, e.g. `{name} as other`"),
    "notebook-one-output": Message("a notebook recipe writes one output, its page",
                                   "give the other outputs rules of their own, or read them "
                                   "in the notebook from `{rule}`'s inputs"),
    "notebook-keyed-output": Message("a notebook recipe writes one page: `{name}[{key}]` would "
                                     "be one per partition",
                                     "write `{name}` whole, reading the partitioned input whole"),
    "notebook-not-html": Message("a notebook recipe writes an html page, but `{name}` is "
                                 "stored as {format}",
                                 "give `{name}` an `.html` location, or `as html`"),
    # -- the command line and the Python API (exit 2, no location) ---------------------
    "no-datafile-above": Message("no Datafile in `{folder}` or any folder above it",
                                 'pass the path: datamake.Project("path/to/Datafile")'),
    "chdir-failed": Message("cannot change to `{folder}`: {reason}"),
    "unknown-param": Message("unknown parameter `{name}`", (_MEAN, "declare it with `param`")),
    "override-not-literal": Message(
        "the value of `{name}` is not a Python literal: `{value}`",
        "write a complete literal (`p=[1, 2]`, `p={{'a': 1}}`), or quote the shell word to "
        "pass a string: `p='\"[1,\"'`"),
    "override-not-mapping": Message("`{name}`: `{here}` is not a mapping, so it has no key "
                                    "`{key}`", "override it whole: `{here}=VALUE`"),
    "override-no-key": Message("`{name}`: `{here}` has no key `{key}`",
                               (_MEAN, "its keys: {keys}")),
    "dry-run-unknown": Message("cannot tell whether {names} {verb} up to date: {reason}",
                               ("{hint}", "a dry run reads what the steps read; make it "
                                          "readable and run it again")),
    "no-rules": Message("the Datafile has no rules, so there is nothing to build"),
    "unknown-target": Message("no rule or dataset named `{target}`",
                              (_MEAN, "`datamake --list` shows the targets")),
    "target-is-param": Message("`{name}` is a parameter, not something to build",
                               "override it with `{name}=VALUE`"),
    "force-unknown": Message("--force: no rule named `{name}`", (_MEAN,)),
    "load-unknown": Message("unknown name `{name}`", (_MEAN,)),
    "load-alias": Message("`{name}` is an alias (a rule with no recipe); it has no value"),
    "gc-size": Message("--gc: `{size}` is not a size", "write e.g. `--gc 5G`, `--gc 500M`"),
    "unknown-executor": Message("unknown executor `{executor}`",
                                "use `local`, `dask` or `dask://HOST:PORT`"),
    "extra-missing": Message("{what} needs {needs}: {install}"),
    "env-name-invalid": Message("--env: `{name}` cannot name an environment",
                                "an environment is one folder of `conf/`: letters, digits, "
                                "`_`, `-` and `.`, e.g. `--env prod`"),
    "credentials-invalid": Message("{reason}",
                                   "a credentials file maps environment variables to "
                                   "values, e.g. `AWS_ACCESS_KEY_ID: ...`"),
    "init-exists": Message("--init: {files} {verb} already; nothing written",
                           "run --init in an empty folder, or move those files away"),
    "log-file-unwritable": Message("--log-file: cannot write `{path}`: {reason}"),
    "runs-unknown-step": Message("--runs: no step named `{step}`", (_MEAN,)),
    "dask-unreachable": Message("cannot reach the Dask scheduler at `{address}`: {reason}"),
    "dask-local-files": Message(
        "the Dask workers at `{address}` cannot see this machine's files: {datasets}",
        "put those datasets on storage the workers share (e.g. s3://...), or run with "
        "`--executor dask` (a local cluster)"),
    "port-unavailable": Message("cannot serve the page on 127.0.0.1:{port}: {reason}",
                                "choose another port with --port N, or leave it out for a "
                                "free one"),
    # -- `name[key]` on the command line ------------------------------------------------
    "key-target-source": Message("`{target}`: no rule writes `{name}`",
                                 "it is a source: datamake reads it and never builds it"),
    "key-target-alias": Message("`{target}`: `{name}` is an alias, not a partitioned output",
                                "build `{name}`, or one partition of what it names"),
    "key-target-not-pattern": Message(
        "`{target}`: `{name}` is not the output of a pattern rule",
        ("rule `{rule}` writes all of `{name}` in one run (it yields its partitions): "
         "build `{name}`",
         "one partition is built by itself when a pattern rule writes it "
         "(`name[key]: input[key]`)")),
    "key-target-invalid": Message("`{target}`: {reason}", ("{hint}",)),
    "key-target-missing": Message(
        "no partition `{target}` to build: its input `{name}` has no partition `{key}`",
        ("rule `{producer}` wrote no partition `{key}` of it; `datamake -n {rule}` lists the "
         "partitions",
         "`{location}` does not exist; `datamake -n {rule}` lists the partitions")),
    # -- `@version`: saved versions (`--history`, `--diff`, `name@version` inputs) -----------
    "history-unknown": Message("no dataset named `{name}`", (_MEAN,)),
    "not-versioned": Message("`{name}` is not versioned",
                             "declare it `dataset {name} = \"...\" versioned`"),
    "diff-args": Message("--diff takes a dataset and at most two versions"),
    "diff-two-datasets": Message("--diff compares two versions of one dataset: `{name}` and "
                                 "`{other}`", "write `--diff {name}@A {name}@B`"),
    "diff-no-version": Message("`{name}@`: no version after `@`",
                               "e.g. `--diff {name}@1 {name}@2`; `datamake --history {name}` "
                               "lists its versions"),
    "notebook-extra": Message("notebook recipes need the `notebook` extra ({module} is not "
                              "installed): {install}"),
    "diff-format": Message("`{name}` is {format}: --diff compares the metrics of a report "
                           "(html) or of a json dataset"),
    "no-versions": Message("{what}: it has no saved versions yet", _HISTORY),
    "one-version": Message("{what}: it has only one version", _HISTORY),
    "no-version-matches": Message("{what}: no version matches `{spec}`", _HISTORY),
    "no-version-number": Message("{what}: there is no version {number}: it has {count}, "
                                 "numbered from 1 (the oldest)", _HISTORY),
    "version-ambiguous": Message("{what}: `{spec}` matches {count} versions: {listed}", _HISTORY),
    # -- at run time ------------------------------------------------------------------
    "not-built": Message("`{name}` has not been built yet", "build it first: `datamake {name}`"),
    # Kinds not yet told apart: the text comes from where the failure was met.
    "storage": Message("{reason}", ("{hint}",)),
    "state": Message("{reason}", ("{hint}",)),
    # -- warnings ---------------------------------------------------------------------
    "unused-dataset": Message("dataset `{name}` is neither read nor written by any rule",
                              "remove it, or use it as a rule's input or output",
                              severity="warning"),
    "builtin-shadows": Message(
        "`{name}` in the recipe of `{rule}` is Python's builtin, not the pipeline's `{name}`",
        "add `{name}` to the inputs to use the pipeline's, or rename it to avoid the confusion",
        severity="warning"),
    "unused-input": Message("the recipe of `{rule}` never uses its input `{local}`",
                            "remove it from the inputs, or use it in the recipe",
                            severity="warning"),
}


def _fields_of(template: str) -> set[str]:
    import string  # only when a message is written: not on a no-op build's path

    return {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template)
            if f}


def _pick(template: str | tuple[str, ...] | None, fields: dict[str, Any]) -> str | None:
    """The first alternative whose fields are all given, filled in; None if none is."""
    if template is None:
        return None
    for t in (template,) if isinstance(template, str) else template:
        if all(fields.get(f) is not None for f in _fields_of(t)):
            return t.format(**fields)
    return None


def text(code: str, **fields: Any) -> tuple[str, str | None, str | None]:
    """The message, help and note of `code` with `fields` filled in.

    Raises KeyError for a code that is not in the table, and KeyError for a field that
    the message needs and was not given (a bug at the call site, caught by the tests)."""
    m = MESSAGES[code]
    return m.text.format(**fields), _pick(m.help, fields), _pick(m.note, fields)
