#!/usr/bin/env python3
"""Print the Debian mirror URL the host's apt uses for a suite (deb822 .sources or sources.list).

Why: the guest root must come from the same archive the host already reaches; no host name is
hard-coded in pmemkit. Usage: apt-mirror.py SUITE
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


def main() -> None:
    suite = sys.argv[1]
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        if url := deb822(open(path).read(), suite):
            print(url)
            return
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        try:
            text = open(path).read()
        except OSError:
            continue
        if url := one_line(text, suite):
            print(url)
            return
    sys.exit(1)


if __name__ == "__main__":
    main()
