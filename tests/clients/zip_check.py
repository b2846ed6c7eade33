"""Reads a ZIP with Python's own zipfile (a reader independent of ours): checks every member's
CRC-32, extracts them into a directory, and prints the members as JSON. Usage:
zip_check.py ARCHIVE DEST (DEST "-": check only)"""
import json
import struct
import sys
import zipfile


def has_zip64(extra):
    """Whether the extra fields hold a ZIP64 one (header id 1)."""
    k = 0
    while k + 4 <= len(extra):
        header, size = struct.unpack("<HH", extra[k:k + 4])
        if header == 1:
            return True
        k += 4 + size
    return False


archive, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(archive) as z:
    bad = z.testzip()
    members = [
        {
            "name": i.filename,
            "size": i.file_size,
            "compressed": i.compress_size,
            "stored": i.compress_type == zipfile.ZIP_STORED,
            "date": list(i.date_time),
            "zip64": has_zip64(i.extra),
        }
        for i in z.infolist()
    ]
    if dest != "-":
        z.extractall(dest)
print(json.dumps({"bad": bad, "members": members}))
