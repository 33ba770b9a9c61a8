"""Check this interpreter against pyproject.toml's requires-python, before any venv or install.

    python3 scripts/check_python.py            # exit 0, or exit 1 with the versions that work
    python3 scripts/check_python.py --venv-hint  # the package that provides `python -m venv` (Debian/Ubuntu)

Runs under any Python 3 (no tomllib, no packaging): the Makefile calls it with the system python.
``--as-version X.Y.Z`` pretends to be another version (for the tests).
"""

import os
import re
import sys

PYPROJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "pyproject.toml")
CANDIDATES = [(3, minor) for minor in range(6, 21)]


def requires_python(text):
    """The requires-python string of a pyproject.toml's text."""
    m = re.search(r'^\s*requires-python\s*=\s*"([^"]+)"', text, re.M)
    if not m:
        raise ValueError("no requires-python in pyproject.toml")
    return m.group(1)


def _key(version):
    return tuple(int(p) for p in version.split("."))


def allows(spec, version):
    """Whether ``version`` (a tuple like (3, 12, 1)) meets ``spec`` (">=3.11,<3.14"; ``==3.12.*`` too)."""
    ops = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
           "<": lambda a, b: a < b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}
    for clause in spec.split(","):
        m = re.match(r"\s*(>=|<=|==|!=|>|<)\s*([0-9.]+?)(\.\*)?\s*$", clause)
        if not m:
            raise ValueError("cannot read requires-python clause %r" % clause)
        op, bound, star = m.groups()
        bound = _key(bound)
        mine = tuple(version[:len(bound)]) if star else tuple(version[:3])
        if not star:
            bound = bound + (0,) * (3 - len(bound))
        if not ops[op](mine, bound):
            return False
    return True


def working_versions(spec):
    """The Python minor versions (3.6 to 3.20) that ``spec`` admits, e.g. ["3.11", "3.12", "3.13"]."""
    return ["%d.%d" % v for v in CANDIDATES if allows(spec, v + (0,)) or allows(spec, v + (99,))]


def message(spec, version, executable):
    works = working_versions(spec)
    names = ", ".join(works[:-1]) + " or " + works[-1] if len(works) > 1 else "".join(works)
    return ("R1 Distill Lab needs Python %s (%s); %s is Python %s.\n"
            "Install one of those (apt, pyenv, uv, ...), then e.g.: make PYTHON=python%s"
            % (spec, names, executable, ".".join(map(str, version)), works[0]))


def venv_hint(version):
    v = "%d.%d" % tuple(version[:2])
    return ("`%s -m venv` failed. On Debian/Ubuntu install the venv module: "
            "sudo apt install python3-venv (or python%s-venv), then run make again." % (sys.executable, v))


def main(argv):
    version = tuple(sys.version_info[:3])
    if "--as-version" in argv:
        version = _key(argv[argv.index("--as-version") + 1])
    if "--venv-hint" in argv:
        print(venv_hint(version), file=sys.stderr)
        return 0
    with open(PYPROJECT) as f:
        spec = requires_python(f.read())
    if allows(spec, version):
        return 0
    print(message(spec, version, sys.executable), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
