#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Parses each reStructuredText file given with docutils and fails on any
warning or error (a malformed table, a short title underline), which the
kernel's Sphinx build would report too."""

import sys

import docutils.core
import docutils.utils


def main(paths: list[str]) -> int:
    bad = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            src = f.read()
        try:
            docutils.core.publish_doctree(
                src, source_path=path,
                settings_overrides={"report_level": 2, "halt_level": 2,
                                    "warning_stream": sys.stderr})
        except docutils.utils.SystemMessage as e:
            print(f"{path}: {e}", file=sys.stderr)
            bad += 1
    print(f"rst: {len(paths) - bad} of {len(paths)} files parse cleanly")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
