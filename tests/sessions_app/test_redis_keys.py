"""Every Redis key name is built in sessions_app/redis_keys.py, and each names its session."""

import ast

from sessions_app import redis_keys
from tests.test_imports import product_modules

KEY_PARTS = ("bo1:", "session:", ":stream", ":lease", ":outbox", "throttle:")


def key_like_strings(tree: ast.AST) -> list[str]:
    """String literals (f-string parts too) that look like Redis key names, docstrings aside."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and any(part in node.value for part in KEY_PARTS)
        and " " not in node.value  # a log message or a comment-like text, not a key
    ]


# The importer spells the original service's key names (it reads that Redis, never ours) and
# "bo1:" event keys that live in PostgreSQL; it writes our Redis through SessionCache only.
OTHER_KEYS = {"importer.sources", "importer.events"}


def test_no_product_module_but_redis_keys_spells_a_key_name():
    found = {}
    for name, path in product_modules().items():
        if name == "sessions_app.redis_keys" or ".migrations." in name or name in OTHER_KEYS:
            continue
        strings = key_like_strings(ast.parse(path.read_text()))
        if strings:
            found[name] = strings
    assert found == {}


def test_every_key_of_a_session_carries_its_id_and_the_pattern_finds_them():
    session_id = "bo1_0f9c"
    keys = [
        redis_keys.raw_entry_key(session_id),
        redis_keys.stream_key(session_id),
        redis_keys.lease_key(session_id),
        redis_keys.outbox_key(session_id),
    ]
    pattern = redis_keys.session_keys_pattern(session_id)
    assert pattern.startswith("bo1*") and pattern.endswith(f"{session_id}*")
    assert all(key.startswith("bo1") and session_id in key for key in keys)
    assert redis_keys.session_id_from_raw_entry_key(keys[0]) == session_id
    assert redis_keys.session_id_from_outbox_key(keys[3]) == session_id
