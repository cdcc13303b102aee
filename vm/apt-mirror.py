#!/usr/bin/env python3
"""Print the Debian mirror URL the host's apt uses for a suite (deb822 .sources or sources.list).

Why: the guest root and every kernel must come from the archive the host already reaches; no host
name is hard-coded in pmemkit. A suite the host does not list (bullseye, trixie-backports, sid on
a bookworm host) is served by the same mirror as one it does: `*-security` suites by the host's
security mirror, the others by its main archive. Usage: apt-mirror.py SUITE
"""

import glob
import sys


def deb822(text: str, suite: str) -> str | None:
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if ":" in line and not line.startswith(("#", " ")):
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.split()
        if "deb" in fields.get("types", []) and suite in fields.get("suites", []):
            return fields["uris"][0]
    return None


def one_line(text: str, suite: str) -> str | None:
    for line in text.splitlines():
        words = [w for w in line.split() if not w.startswith("[")]
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            return words[1]
    return None


def host_mirror(suite: str) -> str | None:
    """The URL the host's apt sources give for exactly `suite`."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            text = open(path).read()
        except OSError:
            continue
        if url := deb822(text, suite):
            return url
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        try:
            text = open(path).read()
        except OSError:
            continue
        if url := one_line(text, suite):
            return url
    return None


def mirror_for(suite: str, host_suite: str = "bookworm") -> str | None:
    """`suite`'s URL on the host, else the host's mirror of the same kind (security or main)."""
    url = host_mirror(suite)
    if url is None and suite.endswith("-security"):
        url = host_mirror(f"{host_suite}-security")
    if url is None and not suite.endswith("-security"):
        url = host_mirror(host_suite)
    return url


def main() -> None:
    url = mirror_for(sys.argv[1])
    if url is None:
        sys.exit(1)
    print(url)


if __name__ == "__main__":
    main()
