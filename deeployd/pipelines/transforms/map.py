"""`map`: build a NEW object from expressions over the input (fields not mentioned are dropped).

`config.expression` maps each output field to an expression string (see expressions.py);
a JSON number/boolean/null instead of a string is taken as that constant. Dotted output names
build nested objects: `{"user.id": "id"}` -> `{"user": {"id": ...}}`.
An evaluation error (e.g. `toNumber("abc")`) fails that item only: it goes to
`ChainOutput.failed` with the reason `"<field>: <message>"` and the batch goes on.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .configs import StrictConfig, validate_config
from .errors import ConfigError, StepError
from .expressions import Compiled, EvalEnv, ExpressionError, compile_expression, parse
from .model import TRANSFORMS, Record, RunCtx, Step
from .paths import check_output_names, set_path, split_path

MAX_FIELDS = 500


class MapConfig(StrictConfig):
    expression: dict[str, Any] = Field(min_length=1, max_length=MAX_FIELDS)


def compile_field(text: Any, loc: tuple[str | int, ...]) -> Compiled:
    if isinstance(text, bool | int | float) or text is None:
        const = text
        return lambda v, env: const
    if not isinstance(text, str):
        raise ConfigError(loc, "expected an expression string")
    try:
        return compile_expression(parse(text))
    except ExpressionError as exc:
        raise ConfigError(loc, exc.msg) from None


@TRANSFORMS.register("map")
class MapStep(Step):
    def __init__(self, index: int, raw: Any, upstream: str | None = None) -> None:
        self.index = index
        loc = ("transforms", index, "config")
        cfg = validate_config(MapConfig, raw, loc)
        names = list(cfg.expression)
        bad = check_output_names(names)
        if bad:
            name, msg = next(iter(bad.items()))
            raise ConfigError((*loc, "expression", name), msg)
        self.pairs: list[tuple[str, Compiled]] = [
            (name, compile_field(text, (*loc, "expression", name)))
            for name, text in cfg.expression.items()
        ]
        self.nested = [(split_path(n), f) for n, f in self.pairs]
        self.flat = all(len(segs) == 1 for segs, _ in self.nested)

    def build(self, value: Any, env: EvalEnv) -> dict:
        if self.flat:
            return {name: f(value, env) for name, f in self.pairs}
        out: dict = {}
        for segs, f in self.nested:
            set_path(out, segs, f(value, env))
        return out

    def explain_failure(self, value: Any, env: EvalEnv, exc: Exception) -> str:
        """Re-run field by field (slow path, failures only) to name the failing field."""
        for name, f in self.pairs:
            try:
                f(value, env)
            except StepError as err:
                return f"{name}: {err}"
            except Exception as err:  # an engine bug must not crash the batch either
                return f"{name}: {type(err).__name__}: {err}"
        return f"map: {exc}"

    def process(self, st: Any, recs: list[Record], ctx: RunCtx) -> list[Record]:
        env = ctx.env
        out: list[Record] = []
        append = out.append
        if self.flat:
            pairs = self.pairs
            for value, src in recs:
                try:
                    append(({name: f(value, env) for name, f in pairs}, src))
                except Exception as exc:
                    ctx.fail(value, src, self.explain_failure(value, env, exc))
            return out
        for value, src in recs:
            try:
                append((self.build(value, env), src))
            except Exception as exc:
                ctx.fail(value, src, self.explain_failure(value, env, exc))
        return out
