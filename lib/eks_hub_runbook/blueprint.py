"""The original blueprint's ``blueprint.tfvars``, read onto the runbook's parameters.

Users of the awslabs blueprint arrive with a tfvars file such as::

    region                      = "us-west-2"
    jupyter_hub_auth_mechanism  = "cognito"
    jupyterhub_domain           = "hub.example.com"
    acm_certificate_domain      = "*.example.com"

``runbook run --tfvars blueprint.tfvars`` reads it (:func:`parameters_from_tfvars`): each
variable becomes the runbook parameter it stands for (:data:`params.BLUEPRINT_NAMES`); a
variable the runbook cannot map, a client secret, or anything but a literal value is
refused, every one at once, before any notebook starts.

The reader understands the part of HCL that tfvars files use: ``name = value`` with
strings, numbers, booleans, ``null`` and lists of them, and ``#``, ``//`` and ``/* */``
comments. Expressions, interpolation and maps are refused with their line number.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from . import params as P
from .errors import ParameterError, TfvarsError, raise_all

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r]+) | (?P<newline>\n) | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:[^"\\\n]|\\.)*") | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][\w-]*) | (?P<punct>[=\[\],{}().:?+*/<>!-])
""", re.VERBOSE | re.DOTALL)


def _tokens(path: Path, text: str) -> list[tuple[str, str, int]]:
    tokens, line, position = [], 1, 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match:
            raise TfvarsError(path, line, f"unexpected {text[position:position + 20]!r}")
        kind, value = match.lastgroup, match.group()
        if kind == "newline":
            tokens.append(("newline", value, line))
        elif kind not in ("space", "comment"):
            tokens.append((kind, value, line))
        line += value.count("\n")
        position = match.end()
    tokens.append(("newline", "\n", line))
    return tokens


def read_tfvars(path: str | Path) -> dict[str, Any]:
    """The variables a tfvars file sets (literal values only), in file order."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ParameterError(f"--tfvars {path}", f"cannot be read ({exc.strerror or exc})", "check the path") from None
    if path.name.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TfvarsError(path, exc.lineno, f"not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict):
            raise TfvarsError(path, 1, "a .tfvars.json file holds one JSON object")
        return data
    tokens, i, variables = _tokens(path, text), 0, {}

    def value(at: int) -> tuple[Any, int]:
        kind, text_, line = tokens[at]
        if kind == "string":
            if "${" in text_ or "%{" in text_:
                raise TfvarsError(path, line, "interpolation is not a literal value")
            return json.loads(text_), at + 1
        if kind == "number":
            return (float(text_) if re.search(r"[.eE]", text_) else int(text_)), at + 1
        if kind == "name" and text_ in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text_], at + 1
        if text_ == "[":
            items, at = [], at + 1
            while True:
                while tokens[at][0] == "newline":
                    at += 1
                if tokens[at][1] == "]":
                    return items, at + 1
                item, at = value(at)
                items.append(item)
                while tokens[at][0] == "newline":
                    at += 1
                if tokens[at][1] == ",":
                    at += 1
                elif tokens[at][1] != "]":
                    raise TfvarsError(path, tokens[at][2], "expected ',' or ']' in a list")
        raise TfvarsError(path, line, f"{text_!r} is not a literal value (maps and expressions are not read)")

    while i < len(tokens):
        kind, text_, line = tokens[i]
        if kind == "newline":
            i += 1
            continue
        if kind != "name" or tokens[i + 1][1] != "=":
            raise TfvarsError(path, line, f"expected `name = value`, found {text_!r}")
        if text_ in variables:
            raise TfvarsError(path, line, f"{text_} is set twice")
        variables[text_], i = value(i + 2)
        if tokens[i][0] != "newline":
            raise TfvarsError(path, tokens[i][2], f"unexpected {tokens[i][1]!r} after the value of {text_}")
    return variables


def parameters_from_tfvars(path: str | Path) -> dict[str, Any]:
    """A blueprint tfvars file as runbook parameters (``-p`` values given later override them).

    Refused, all at once: a client secret (secrets are never parameters, and should not sit in
    a tfvars file either), and a variable that is neither a blueprint name nor a runbook
    parameter.
    """
    variables = read_tfvars(path)
    known = P.parameter_names()
    parameters, errors = {}, []
    for name, value in variables.items():
        if name in P.SECRET_BLUEPRINT_NAMES:
            env = P.SECRET_ENV[P.SECRET_BLUEPRINT_NAMES[name]]
            errors.append(ParameterError(
                name, f"is a client secret in {path}: secrets are never parameters (the runbook would record it)",
                f"remove it from the file (rotate it if the file was shared) and export {env}=... or use --secrets-file"))
        elif name in P.BLUEPRINT_NAMES:
            parameters[P.BLUEPRINT_NAMES[name]] = value
        elif name in known:
            parameters[name] = value
        else:
            error = P.unknown_parameter(name, known, "a runbook parameter")
            errors.append(ParameterError(name, f"{error.problem} (set in {path})", error.fix))
    raise_all(errors)
    return parameters
