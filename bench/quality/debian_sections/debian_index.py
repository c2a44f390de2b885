"""Read Debian's package index as apt fetched it (shared by `debian_sections` and `debian_tags`).

The binary package lists come from /var/lib/apt/lists/ (written by `apt-get update`); apt
itself says which file holds which list (`apt-get indextargets`) and decompresses it
(`/usr/lib/apt/apt-helper cat-file`). Every list is checked against the SHA256 in its
release's InRelease file, which apt verified (signature) when it fetched it, so "the same
lists" means "the same InRelease".

Long descriptions are not in the Packages lists (only the synopsis and a Description-md5):
they live in the release's `main/i18n/Translation-en`, which this machine's apt does not fetch
(Acquire::Languages "none"). `translations()` downloads exactly the Translation-en.xz that
the local InRelease names (by-hash URL, SHA256 checked by apt-helper) into a cache folder.
"""
from __future__ import annotations

import hashlib
import lzma
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

LISTS_DIR = Path("/var/lib/apt/lists")
APT_HELPER = "/usr/lib/apt/apt-helper"
FIX = "run `apt-get update` (as root) so apt fetches Debian's package lists"


@dataclass
class Release:
    codename: str            # bookworm
    component: str           # main
    arch: str                # amd64
    repo_uri: str            # http://deb.debian.org/debian/
    inrelease: Path          # the InRelease file apt verified
    packages_file: Path      # the (compressed) Packages list apt keeps
    fields: dict = field(default_factory=dict)    # Origin, Suite, Version, Codename, Date, ...
    sha256: dict = field(default_factory=dict)    # MetaKey -> (sha256, size)

    def info(self) -> dict:
        """What built.json records about the lists a set was built from."""
        key = f"{self.component}/binary-{self.arch}/Packages"
        return {"origin": self.fields.get("Origin"), "suite": self.fields.get("Suite"),
                "codename": self.codename, "version": self.fields.get("Version"),
                "inrelease_date": self.fields.get("Date"), "repo_uri": self.repo_uri,
                "inrelease_sha256": hashlib.sha256(self.inrelease.read_bytes()).hexdigest(),
                "packages_list": key, "packages_sha256": self.sha256[key][0],
                "packages_file": str(self.packages_file)}


def _indextargets(codename: str, component: str, arch: str) -> list[dict]:
    fmt = "$(FILENAME)\t$(REPO_URI)\t$(RELEASE)\t$(ORIGIN)\t$(COMPONENT)\t$(ARCHITECTURE)"
    try:
        out = subprocess.run(["apt-get", "indextargets", "--format", fmt, "Identifier: Packages"],
                             check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"cannot ask apt for its package lists ({e}); this build needs Debian's apt")
    rows = [dict(zip(("filename", "repo_uri", "release", "origin", "component", "arch"), line.split("\t")))
            for line in out.splitlines() if line.strip()]
    return [r for r in rows if r["release"] == codename and r["origin"] == "Debian"
            and r["component"] == component and r["arch"] == arch]


def _inrelease_for(packages_file: Path, codename: str) -> Path:
    prefix = packages_file.name.split(f"_dists_{codename}_")[0]
    path = packages_file.parent / f"{prefix}_dists_{codename}_InRelease"
    if not path.exists():
        raise SystemExit(f"{path} is missing (have {packages_file}); {FIX}")
    return path


def parse_release(text: str) -> tuple[dict, dict]:
    """(fields, {MetaKey: (sha256, size)}) of an InRelease/Release file (PGP armour ignored)."""
    if text.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        text = text.split("\n\n", 1)[1].split("\n-----BEGIN PGP SIGNATURE-----", 1)[0]
    fields, sha256, section = {}, {}, None
    for line in text.splitlines():
        if line.startswith(" "):
            if section == "SHA256":
                digest, size, name = line.split()
                sha256[name] = (digest, int(size))
            continue
        key, _, value = line.partition(":")
        section = key
        if value.strip():
            fields[key] = value.strip()
    return fields, sha256


def release(codename: str = "bookworm", component: str = "main", arch: str = "amd64") -> Release:
    """The local lists of Debian `codename` (the release itself, not -updates or -security)."""
    targets = _indextargets(codename, component, arch)
    if not targets:
        raise SystemExit(f"apt has no Debian {codename} {component} {arch} Packages list configured; "
                         f"add `deb http://deb.debian.org/debian {codename} {component}` to apt's sources, then {FIX}")
    # apt names the file it would keep; which compression it kept depends on the configuration.
    found = []
    for t in targets:
        base = Path(t["filename"])
        stem = base.name.split("_Packages")[0] + "_Packages"
        found += [(p, t) for p in sorted(base.parent.glob(stem + "*")) if p.name[len(stem):] in
                  ("", ".lz4", ".gz", ".xz", ".zst", ".bz2", ".lzma")]
    if not found:
        raise SystemExit(f"no downloaded Packages list for Debian {codename} {component} {arch} in "
                         f"{Path(targets[0]['filename']).parent} (expected {targets[0]['filename']}); {FIX}")
    packages_file, target = found[0]
    inrelease = _inrelease_for(packages_file, codename)
    fields, sha256 = parse_release(inrelease.read_text(encoding="utf-8"))
    return Release(codename, component, arch, target["repo_uri"], inrelease, packages_file, fields, sha256)


def _cat(path: Path) -> bytes:
    """The decompressed content of a list file, decompressed by apt itself."""
    try:
        return subprocess.run([APT_HELPER, "cat-file", str(path)], check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"apt-helper cannot read {path} ({e}); {FIX}")


def parse_deb822(text: str) -> list[dict]:
    """Paragraphs of a deb822 file as dicts; continuation lines joined with '\\n' (leading space kept)."""
    records = []
    for para in text.split("\n\n"):
        rec, key = {}, None
        for line in para.split("\n"):
            if not line:
                continue
            if line[0] in " \t":
                rec[key] += "\n" + line
            else:
                key, _, value = line.partition(":")
                rec[key] = value.strip()
        if rec:
            records.append(rec)
    return records


def packages(rel: Release) -> list[dict]:
    """Every paragraph of the release's Packages list, after checking it against the InRelease."""
    key = f"{rel.component}/binary-{rel.arch}/Packages"
    data = _cat(rel.packages_file)
    want, size = rel.sha256.get(key, (None, None))
    got = hashlib.sha256(data).hexdigest()
    if got != want or len(data) != size:
        raise SystemExit(f"{rel.packages_file}: SHA256 {got} ({len(data)} bytes) is not what {rel.inrelease} "
                         f"lists for {key} ({want}, {size} bytes): lists from two updates are mixed; {FIX}")
    return parse_deb822(data.decode("utf-8"))


def translations(rel: Release, cache: Path) -> dict[str, str]:
    """{Description-md5: full English description (synopsis line, then the body)} from the
    Translation-en.xz the local InRelease names; downloaded once into `cache`."""
    key = f"{rel.component}/i18n/Translation-en.xz"
    if key not in rel.sha256:
        raise SystemExit(f"{rel.inrelease} lists no {key}")
    digest, size = rel.sha256[key]
    path = cache / f"Translation-en.{rel.codename}.{digest[:16]}.xz"
    if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
        cache.mkdir(parents=True, exist_ok=True)
        dirname = key.rsplit("/", 1)[0]
        url = f"{rel.repo_uri.rstrip('/')}/dists/{rel.codename}/{dirname}/by-hash/SHA256/{digest}"
        tmp = path.with_suffix(".part")
        try:
            subprocess.run([APT_HELPER, "download-file", url, str(tmp), f"SHA256:{digest}"], check=True,
                           capture_output=True, text=True)
        except (OSError, subprocess.CalledProcessError) as e:
            raise SystemExit(f"cannot download {url} with apt-helper ({getattr(e, 'stderr', e)})")
        tmp.rename(path)
    data = lzma.decompress(path.read_bytes())
    want = rel.sha256.get(key[: -len(".xz")])
    if want and hashlib.sha256(data).hexdigest() != want[0]:
        raise SystemExit(f"{path}: decompressed SHA256 does not match {rel.inrelease}")
    return {r["Description-md5"]: r["Description-en"] for r in parse_deb822(data.decode("utf-8"))
            if "Description-md5" in r and "Description-en" in r}


def translation_info(rel: Release) -> dict:
    key = f"{rel.component}/i18n/Translation-en.xz"
    return {"translation_list": key, "translation_sha256": rel.sha256[key][0]}


# ---------------------------------------------------------------- fields of one package

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9.+\-]*)")


def relation_names(value: str | None) -> list[list[str]]:
    """`a (>= 1) | b, c:any [amd64]` -> [['a', 'b'], ['c']]: one list of alternatives per clause."""
    clauses = []
    for clause in (value or "").replace("\n", " ").split(","):
        names = [m.group(1) for alt in clause.split("|") if (m := _NAME.match(alt))]
        if names:
            clauses.append(names)
    return clauses


def count_relations(value: str | None) -> int:
    """Number of comma-separated clauses (alternatives `a | b` count once)."""
    return len(relation_names(value))


def source_name(pkg: dict) -> str:
    """The source package: `Source:` without a version in parentheses, else the binary's name."""
    return (pkg.get("Source") or pkg["Package"]).split()[0]


def tags(pkg: dict) -> list[str]:
    return [t.strip() for t in pkg.get("Tag", "").replace("\n", " ").split(",") if t.strip()]


def reverse_depends(pkgs: list[dict]) -> dict[str, int]:
    """{package: number of other binary packages whose Depends or Pre-Depends name it}."""
    users: dict[str, set] = {}
    for p in pkgs:
        for field_ in ("Depends", "Pre-Depends"):
            for clause in relation_names(p.get(field_)):
                for name in clause:
                    if name != p["Package"]:
                        users.setdefault(name, set()).add(p["Package"])
    return {name: len(s) for name, s in users.items()}


def description_text(full: str) -> tuple[str, str]:
    """(synopsis, body) of a Debian description: the body's paragraphs (separated by ' .' lines)
    each on one line, whitespace inside a paragraph collapsed to single spaces."""
    synopsis, _, rest = full.partition("\n")
    paragraphs, current = [], []
    for line in rest.split("\n"):
        if line.strip() == ".":
            paragraphs.append(current)
            current = []
        elif line.strip():
            current += line.split()
    paragraphs.append(current)
    return " ".join(synopsis.split()), "\n".join(" ".join(p) for p in paragraphs if p)
