"""The dependency direction of the architecture guide, and templates the CSP can serve."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.web.templating import env

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("app", "media", "emails", "scheduler")
TEMPLATES = ROOT / "app" / "web" / "templates"


@dataclass(frozen=True)
class Imported:
    """One module a source file imports (or may import, for `from package import name`)."""

    file: str
    line: int
    module: str


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str | None, level: int, current: str, is_package: bool) -> str:
    if level == 0:
        return module or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def imports_of(
    source: str, *, module: str, is_package: bool = False, file: str = ""
) -> list[Imported]:
    """Every module named by an import statement or a literal dynamic import, at any depth."""
    found: list[Imported] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Imported(file, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node.module, node.level, module, is_package)
            found.append(Imported(file, node.lineno, base))
            # `from app import web` imports the module app.web.
            found += [Imported(file, node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(Imported(file, node.lineno, node.args[0].value))
    return found


# Calls that start a process without naming the subprocess module.
_PROCESS_CALLS = {
    ("asyncio", "create_subprocess_exec"),
    ("asyncio", "create_subprocess_shell"),
    ("os", "system"),
    ("os", "popen"),
    ("os", "execv"),
    ("os", "execvp"),
    ("os", "spawnv"),
    ("os", "posix_spawn"),
}


def process_calls_of(source: str, *, file: str = "") -> list[Imported]:
    """`os.system(...)`-style calls, reported like imports of `module.function`."""
    found: list[Imported] = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and (node.value.id, node.attr) in _PROCESS_CALLS
        ):
            found.append(Imported(file, node.lineno, f"{node.value.id}.{node.attr}"))
    return found


def _sources() -> list[Path]:
    files: list[Path] = []
    for package in PACKAGES:
        files += sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)
    return files


def _all_imports() -> list[Imported]:
    found: list[Imported] = []
    for path in _sources():
        source = path.read_text(encoding="utf-8")
        rel = path.relative_to(ROOT).as_posix()
        module = _module_name(path)
        is_package = path.name == "__init__.py"
        found += imports_of(source, module=module, is_package=is_package, file=rel)
        found += process_calls_of(source, file=rel)
    return found


IMPORTS = _all_imports()


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _in_file(file: str, prefixes: tuple[str, ...]) -> bool:
    return any(file == prefix or file.startswith(prefix + "/") for prefix in prefixes)


@dataclass(frozen=True)
class Rule:
    """Files under `where` (paths, or exact .py files) must not import anything in `forbidden`."""

    name: str
    where: tuple[str, ...]
    forbidden: tuple[str, ...]


RULES = [
    Rule("media is a library", ("media",), ("app",)),
    Rule("emails is a library", ("emails",), ("app",)),
    Rule(
        "services are transport-free",
        ("app/services",),
        ("starlette", "socketio", "engineio", "app.web", "app.realtime"),
    ),
    Rule(
        "models are transport-free",
        ("app/models",),
        ("starlette", "socketio", "engineio", "app.web", "app.realtime"),
    ),
    Rule("models sit below services", ("app/models",), ("app.services",)),
    Rule("web does not reach into realtime", ("app/web",), ("app.realtime",)),
    Rule("realtime does not reach into web", ("app/realtime",), ("app.web",)),
    Rule("settings is a leaf", ("app/settings.py",), ("app",)),
    Rule("the scheduler is not a web process", ("scheduler",), ("app.web", "app.realtime")),
]


def violations(rule: Rule, imports: list[Imported]) -> list[str]:
    return [
        f"{imp.file}:{imp.line} imports {imp.module}"
        for imp in imports
        if _in_file(imp.file, rule.where) and _within(imp.module, rule.forbidden)
    ]


def test_sources_are_found() -> None:
    files = {imp.file for imp in IMPORTS}
    for expected in ("app/main.py", "app/services/auth.py", "media/ffmpeg.py", "emails/mailers.py"):
        assert expected in files
    assert any(_within(imp.module, ("app.services",)) for imp in IMPORTS)


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.name)
def test_dependency_direction(rule: Rule) -> None:
    assert any(_in_file(imp.file, rule.where) for imp in IMPORTS), f"no files for {rule.where}"
    assert violations(rule, IMPORTS) == []


def test_processes_and_ffmpeg_only_in_media() -> None:
    outside = [
        f"{imp.file}:{imp.line} uses {imp.module}"
        for imp in IMPORTS
        if not _in_file(imp.file, ("media",))
        and _within(imp.module, ("ffmpeg", "subprocess", *(f"{a}.{b}" for a, b in _PROCESS_CALLS)))
    ]
    assert outside == []
    # The rule is not vacuous: media/ does run ffmpeg.
    assert any(
        _in_file(imp.file, ("media",)) and _within(imp.module, ("ffmpeg", "subprocess"))
        for imp in IMPORTS
    )


def test_the_checker_sees_every_kind_of_import() -> None:
    source = "\n".join(
        [
            "import starlette.requests",
            "from ..web import pages",
            "from . import crypto",
            "def later():",
            "    import socketio",
            "    importlib.import_module('app.realtime.hub')",
            "    asyncio.create_subprocess_exec('ffmpeg')",
        ]
    )
    found = imports_of(source, module="app.services.team", file="app/services/team.py")
    found += process_calls_of(source, file="app/services/team.py")
    names = {imp.module for imp in found}
    assert {"starlette.requests", "app.web.pages", "app.services.crypto", "socketio"} <= names
    assert {"app.realtime.hub", "asyncio.create_subprocess_exec"} <= names
    services = next(rule for rule in RULES if rule.name == "services are transport-free")
    flagged = {message.split(" ")[0] for message in violations(services, found)}
    assert flagged == {f"app/services/team.py:{line}" for line in (1, 2, 5, 6)}
    package_relative = imports_of("from .mailers import Mailer", module="emails", is_package=True)
    assert "emails.mailers" in {imp.module for imp in package_relative}


# --- templates ---------------------------------------------------------------------------------

_TEMPLATE_FILES = sorted(TEMPLATES.rglob("*.html"))
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)
_STYLE_ATTR = re.compile(r"\sstyle\s*=", re.IGNORECASE)
_STYLE_ELEMENT = re.compile(r"<style\b", re.IGNORECASE)
_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
_JS_URL = re.compile(r"javascript:", re.IGNORECASE)
_FORM = re.compile(r"<form\b([^>]*)>(.*?)</form\s*>", re.IGNORECASE | re.DOTALL)
_POST = re.compile(r"""\bmethod\s*=\s*["']?post\b""", re.IGNORECASE)
_CSRF_CALL = re.compile(r"\{\{\s*csrf\(\)\s*\}\}")
_CSRF = re.compile(r"""\{\{\s*csrf\(\)\s*\}\}|name\s*=\s*["']csrf_token["']""")


def _template_id(path: Path) -> str:
    return path.relative_to(TEMPLATES).as_posix()


def test_templates_are_found() -> None:
    names = {_template_id(path) for path in _TEMPLATE_FILES}
    assert {"base.html", "error.html", "auth/login.html", "admin/team.html"} <= names


@pytest.mark.parametrize("path", _TEMPLATE_FILES, ids=_template_id)
def test_template_needs_no_inline_code(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for attributes, body in _SCRIPT.findall(text):
        assert "src=" in attributes, f"a <script> without src in {_template_id(path)}"
        assert not body.strip(), f"an inline script body in {_template_id(path)}"
    assert text.lower().count("<script") == len(_SCRIPT.findall(text)), "unclosed <script>"
    assert not _STYLE_ATTR.search(text), "style attribute (CSP style-src 'self')"
    assert not _STYLE_ELEMENT.search(text), "<style> element (CSP style-src 'self')"
    assert not _HANDLER.findall(text), "inline event handler (CSP script-src 'self')"
    assert not _JS_URL.search(text), "javascript: URL (CSP script-src 'self')"


@pytest.mark.parametrize("path", _TEMPLATE_FILES, ids=_template_id)
def test_every_post_form_carries_a_csrf_token(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.lower().count("<form") == len(_FORM.findall(text)), "unclosed <form>"
    for attributes, body in _FORM.findall(text):
        if "data-csrf-exempt" in attributes:
            # Only forms whose paths the middleware exempts: the public registration form (it
            # must work framed on other sites) and the unsubscribe page's buttons, which post to
            # the same signed link a mail provider's cookieless one-click request uses.
            assert _template_id(path) in {"public/_form.html", "public/unsubscribe.html"}, (
                "an unexpected CSRF-exempt form"
            )
            continue
        if _POST.search(attributes):
            assert _CSRF.search(body), f"a POST form without a CSRF token: <form{attributes}>"
    if _CSRF_CALL.search(text):
        assert re.search(
            r"""\{%-?\s*from\s+["']_macros\.html["']\s+import\s[^%]*\bcsrf\b""", text
        ), "csrf() is used but not imported from _macros.html"


def test_templates_compile() -> None:
    for path in _TEMPLATE_FILES:
        env.get_template(_template_id(path))


def test_the_template_checks_catch_offenders() -> None:
    bad = (
        '<form method="POST" action="/x">'
        '<button onclick="go()" style="color:red">Go</button></form>'
    )
    (attributes, body) = _FORM.findall(bad)[0]
    assert _POST.search(attributes)
    assert not _CSRF.search(body)
    assert _HANDLER.search(bad)
    assert _STYLE_ATTR.search(bad)
    assert _SCRIPT.findall("<script>alert(1)</script>") == [("", "alert(1)")]
    assert _CSRF.search('<form method="post">{{ csrf() }}</form>')
    assert not _HANDLER.search('<a data-confirm="Sure?" href="/x">x</a>')
