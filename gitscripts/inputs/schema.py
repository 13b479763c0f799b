"""What a script's `main(data)` expects, read from its source without running it.

A script is hostile code, so its input description is found by reading its syntax tree (`ast`),
never by importing it. What is read, most telling first:

- a class annotating `data` (`def main(data: Inputs)`) or built from it inside `main`
  (`Inputs(**data)`, `Inputs.model_validate(data)`): a `TypedDict`, a dataclass or a pydantic
  model defined in the script, its fields with their types, defaults and docstrings;
- the keys `main` reads from `data`: `data["x"]` (required), `data.get("x", default)` and
  `data.pop("x", default)` (optional, with the default when it is a literal), `"x" in data`
  (optional); `float(data["x"])` and a literal default tell the type;
- the docstring of `main` (or of the module) as the description, and its lines `x: ...` or
  `x (type): ...` as the descriptions of the keys they name.

The answer is a JSON Schema (draft 2020-12) object; `example_of` turns one into the input a
person starts from: every key, with its default or an empty value of its type.
"""

from __future__ import annotations

import ast
import re
from typing import Any

JSONSchema = dict[str, Any]

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_SCALARS: dict[str, JSONSchema] = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "complex": {"type": "number"},
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
    "bytes": {"type": "string"},
    "None": {"type": "null"},
    "NoneType": {"type": "null"},
    "Any": {},
    "object": {},
}
_ARRAYS = {"list", "List", "tuple", "Tuple", "set", "Set", "frozenset", "Sequence", "Iterable"}
_OBJECTS = {"dict", "Dict", "Mapping", "MutableMapping"}
_EMPTY_SCALARS: dict[str, Any] = {"integer": 0, "number": 0.0, "string": "", "boolean": False}
# `float(data["x"])` says what `x` should be.
_CONVERSIONS = {"int": "integer", "float": "number", "str": "string", "bool": "boolean"}
# `Model(**data)`, `Model.model_validate(data)`, `Model.parse_obj(data)`: `data` is a Model.
_VALIDATORS = {"model_validate", "parse_obj", "validate", "from_dict"}
# A docstring line naming a key: `x: ...`, `- x (float): ...`, `* ``x``: ...`.
_DOC_KEY = re.compile(r"^\s*[-*]?\s*`{0,2}([A-Za-z_][\w.-]*)`{0,2}\s*(?:\(([^)]*)\))?\s*:\s*(.+)$")


def infer_input_schema(source: bytes | str, title: str | None = None) -> JSONSchema:
    """The JSON Schema of what `main` reads from its argument; an open object when nothing can
    be told (no `main`, source that does not parse)."""
    schema: JSONSchema = {"$schema": SCHEMA_DIALECT, "type": "object"}
    if title:
        schema["title"] = title
    try:
        module = ast.parse(source)
    except (SyntaxError, ValueError):
        return schema
    main = next(
        (
            node
            for node in module.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "main"
        ),
        None,
    )
    docstring = (main and ast.get_docstring(main)) or ast.get_docstring(module)
    if docstring:
        schema["description"] = docstring
    if main is None or not [*main.args.posonlyargs, *main.args.args]:
        return schema
    parameter = [*main.args.posonlyargs, *main.args.args][0]
    classes = {node.name: node for node in module.body if isinstance(node, ast.ClassDef)}
    reader = _Reader(classes)
    model = _model_of(parameter, main, classes)
    body = reader.class_schema(model) if model is not None else None
    properties: dict[str, JSONSchema] = dict(body["properties"]) if body else {}
    required: list[str] = list(body.get("required", [])) if body else []
    if body and body.get("description") and "description" not in schema:
        schema["description"] = body["description"]
    described = set(properties)  # the class decides whether its own fields are required
    for key, use in _keys_read(main, parameter.arg).items():
        found = properties.setdefault(key, {})
        for name, value in use.schema.items():
            found.setdefault(name, value)
        if use.required and key not in described:
            required.append(key)
    if docstring:
        for key, description in _documented_keys(docstring, set(properties)).items():
            properties[key].setdefault("description", description)
    if properties:
        schema["properties"] = properties
    if required:
        schema["required"] = required
    return schema


def example_of(schema: JSONSchema) -> Any:
    """A value a person starts from: the default, else the first example, else an empty value of
    the type; for an object, every property."""
    if "default" in schema:
        return schema["default"]
    if schema.get("examples"):
        return schema["examples"][0]
    if schema.get("enum"):
        return schema["enum"][0]
    if schema.get("anyOf"):
        members = [member for member in schema["anyOf"] if isinstance(member, dict)]
        chosen = next((member for member in members if member.get("type") != "null"), None)
        return example_of(chosen) if chosen is not None else None
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((each for each in kind if each != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        return {
            key: example_of(value if isinstance(value, dict) else {})
            for key, value in properties.items()
        }
    if kind == "array":
        return []
    return _EMPTY_SCALARS.get(kind) if isinstance(kind, str) else None


class _Use:
    """How `main` reads one key."""

    def __init__(self) -> None:
        self.required = False
        self.optional = False
        self.schema: JSONSchema = {}


def _keys_read(main: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> dict[str, _Use]:
    parents = {child: node for node in ast.walk(main) for child in ast.iter_child_nodes(node)}
    uses: dict[str, _Use] = {}

    def use(key: str) -> _Use:
        return uses.setdefault(key, _Use())

    def is_data(node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and node.id == name

    # In reading order, so the keys are listed as the script first uses them.
    in_order = sorted(
        ast.walk(main),
        key=lambda node: (getattr(node, "lineno", 0), getattr(node, "col_offset", 0)),
    )
    for node in in_order:
        if (
            isinstance(node, ast.Subscript)
            and is_data(node.value)
            and isinstance(node.ctx, ast.Load)
            and isinstance(key := _string(node.slice), str)
        ):
            found = use(key)
            found.required = True
            wrapper = parents.get(node)
            if (
                isinstance(wrapper, ast.Call)
                and isinstance(wrapper.func, ast.Name)
                and wrapper.func.id in _CONVERSIONS
                and wrapper.args == [node]
            ):
                found.schema.setdefault("type", _CONVERSIONS[wrapper.func.id])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and is_data(node.func.value)
            and node.func.attr in ("get", "pop")
            and node.args
            and isinstance(key := _string(node.args[0]), str)
        ):
            found = use(key)
            found.optional = True
            if len(node.args) > 1:
                default = _literal(node.args[1])
                if default is not _NOT_LITERAL:
                    found.schema.setdefault("default", default)
                    if (kind := _json_type(default)) is not None:
                        found.schema.setdefault("type", kind)
        elif (
            isinstance(node, ast.Compare)
            and len(node.ops) == 1
            and isinstance(node.ops[0], ast.In | ast.NotIn)
            and is_data(node.comparators[0])
            and isinstance(key := _string(node.left), str)
        ):
            use(key).optional = True
    for found in uses.values():
        # A key read with `[]` but also looked up with a default or tested first is optional.
        found.required = found.required and not found.optional
    return uses


def _model_of(
    parameter: ast.arg,
    main: ast.FunctionDef | ast.AsyncFunctionDef,
    classes: dict[str, ast.ClassDef],
) -> ast.ClassDef | None:
    """The class `data` is described by: its annotation, or the class `main` builds from it."""
    annotation = parameter.annotation
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        annotation = ast.Name(id=annotation.value)
    if isinstance(annotation, ast.Name) and annotation.id in classes:
        return classes[annotation.id]
    for node in ast.walk(main):
        if not isinstance(node, ast.Call):
            continue
        built = node.func
        if isinstance(built, ast.Name) and any(
            isinstance(keyword.value, ast.Name) and keyword.value.id == parameter.arg
            for keyword in node.keywords
            if keyword.arg is None
        ):
            target = built.id
        elif (
            isinstance(built, ast.Attribute)
            and built.attr in _VALIDATORS
            and isinstance(built.value, ast.Name)
            and node.args
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == parameter.arg
        ):
            target = built.value.id
        else:
            continue
        if target in classes:
            return classes[target]
    return None


class _Reader:
    """Turns type annotations and the classes of one module into JSON Schema."""

    def __init__(self, classes: dict[str, ast.ClassDef]) -> None:
        self.classes = classes
        self.seen: set[str] = set()

    def class_schema(self, node: ast.ClassDef) -> JSONSchema | None:
        kind = _class_kind(node)
        if kind is None or node.name in self.seen:
            return None
        self.seen.add(node.name)
        try:
            total = not any(
                keyword.arg == "total" and _literal(keyword.value) is False
                for keyword in node.keywords
            )
            properties: dict[str, JSONSchema] = {}
            required: list[str] = []
            body = node.body
            for index, statement in enumerate(body):
                if not isinstance(statement, ast.AnnAssign) or not isinstance(
                    statement.target, ast.Name
                ):
                    continue
                annotation = statement.annotation
                wrapper = _subscript_name(annotation)
                if wrapper == "ClassVar":
                    continue
                must = total
                if wrapper in ("Required", "NotRequired"):
                    must = wrapper == "Required"
                    annotation = annotation.slice  # type: ignore[attr-defined]
                field = self.annotation_schema(annotation)
                if statement.value is not None:
                    must = False
                    default, description = _default_of(statement.value)
                    if default is _REQUIRED:
                        must = True
                    elif default is not _NOT_LITERAL:
                        field["default"] = default
                    if description:
                        field["description"] = description
                follower = body[index + 1] if index + 1 < len(body) else None
                if (
                    isinstance(follower, ast.Expr)
                    and isinstance(follower.value, ast.Constant)
                    and isinstance(follower.value.value, str)
                ):
                    field.setdefault("description", follower.value.value.strip())
                properties[statement.target.id] = field
                if must:
                    required.append(statement.target.id)
            schema: JSONSchema = {"type": "object", "properties": properties}
            if required:
                schema["required"] = required
            docstring = ast.get_docstring(node)
            if docstring:
                schema["description"] = docstring
            return schema
        finally:
            self.seen.discard(node.name)

    def annotation_schema(self, node: ast.expr | None) -> JSONSchema:
        if node is None:
            return {}
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return {}
        if isinstance(node, ast.Constant) and node.value is None:
            return {"type": "null"}
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return _union([self.annotation_schema(node.left), self.annotation_schema(node.right)])
        name = _dotted_tail(node.value if isinstance(node, ast.Subscript) else node)
        arguments = _subscript_arguments(node)
        if name in ("Optional", "Union"):
            members = [self.annotation_schema(argument) for argument in arguments]
            if name == "Optional":
                members.append({"type": "null"})
            return _union(members)
        if name == "Annotated" and arguments:
            schema = self.annotation_schema(arguments[0])
            for extra in arguments[1:]:
                if isinstance(extra, ast.Constant) and isinstance(extra.value, str):
                    schema.setdefault("description", extra.value)
            return schema
        if name == "Literal":
            values = [_literal(argument) for argument in arguments]
            return {"enum": [value for value in values if value is not _NOT_LITERAL]}
        if name in _ARRAYS:
            schema = {"type": "array"}
            if arguments and not (
                isinstance(arguments[-1], ast.Constant) and arguments[-1].value is Ellipsis
            ):
                schema["items"] = self.annotation_schema(arguments[0])
            return schema
        if name in _OBJECTS:
            schema = {"type": "object"}
            if len(arguments) == 2:
                value_schema = self.annotation_schema(arguments[1])
                if value_schema:
                    schema["additionalProperties"] = value_schema
            return schema
        if name in _SCALARS:
            return dict(_SCALARS[name])
        if name in self.classes:
            return self.class_schema(self.classes[name]) or {}
        return {}


def _union(members: list[JSONSchema]) -> JSONSchema:
    if any(not member for member in members):
        return {}
    if all(set(member) == {"type"} and isinstance(member["type"], str) for member in members):
        kinds = list(dict.fromkeys(member["type"] for member in members))
        return {"type": kinds[0] if len(kinds) == 1 else kinds}
    return {"anyOf": members}


def _class_kind(node: ast.ClassDef) -> str | None:
    bases = {_dotted_tail(base) for base in node.bases}
    if "TypedDict" in bases:
        return "typeddict"
    if "BaseModel" in bases:
        return "pydantic"
    decorators = {
        _dotted_tail(decorator.func if isinstance(decorator, ast.Call) else decorator)
        for decorator in node.decorator_list
    }
    if "dataclass" in decorators:
        return "dataclass"
    return None


_NOT_LITERAL = object()
_REQUIRED = object()


def _default_of(value: ast.expr) -> tuple[Any, str | None]:
    """A field's default from `= 3`, `= field(default=3)` or `= Field(3, description=...)`;
    `Field(...)` means required."""
    if not isinstance(value, ast.Call) or _dotted_tail(value.func) not in ("field", "Field"):
        return _literal(value), None
    keywords = {keyword.arg: keyword.value for keyword in value.keywords if keyword.arg}
    description = keywords.get("description")
    text = (
        description.value
        if isinstance(description, ast.Constant) and isinstance(description.value, str)
        else None
    )
    default_node = value.args[0] if value.args else keywords.get("default")
    if default_node is None:
        return (_NOT_LITERAL if "default_factory" in keywords else _REQUIRED), text
    if isinstance(default_node, ast.Constant) and default_node.value is Ellipsis:
        return _REQUIRED, text
    return _literal(default_node), text


def _literal(node: ast.expr) -> Any:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NOT_LITERAL
    return value if _json_type(value) is not None or value is None else _NOT_LITERAL


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array" if all(_plain(item) for item in value) else None
    if isinstance(value, dict):
        plain = all(isinstance(key, str) and _plain(item) for key, item in value.items())
        return "object" if plain else None
    return None


def _plain(value: Any) -> bool:
    return value is None or _json_type(value) is not None


def _string(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _dotted_tail(node: ast.expr) -> str | None:
    """`typing.Optional` and `Optional` alike: the last name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and node.value is None:
        return "None"
    return None


def _subscript_name(node: ast.expr) -> str | None:
    return _dotted_tail(node.value) if isinstance(node, ast.Subscript) else None


def _subscript_arguments(node: ast.expr) -> list[ast.expr]:
    if not isinstance(node, ast.Subscript):
        return []
    inner = node.slice
    return list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]


def _documented_keys(docstring: str, keys: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in docstring.splitlines():
        match = _DOC_KEY.match(line)
        if match and match.group(1) in keys and match.group(1) not in found:
            found[match.group(1)] = match.group(3).strip()
    return found
