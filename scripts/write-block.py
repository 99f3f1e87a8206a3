#!/usr/bin/env python3
"""write-block.py NAME DOC: replace the block between <!-- NAME:begin ... --> and
<!-- NAME:end --> in DOC with standard input (which holds both markers), or
append it when DOC has no such block yet."""
import re
import sys

name, doc = sys.argv[1], sys.argv[2]
block = sys.stdin.read()
text = open(doc).read()
pattern = re.compile(r"<!-- " + re.escape(name) + r":begin.*?<!-- " + re.escape(name) + r":end -->\n?", re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: block, text)
else:
    text += "\n" + block
open(doc, "w").write(text)
