"""Reading Gate's error label out of an answer (sidecar.gate.labels)."""

from __future__ import annotations

import gzip
import zlib

import pytest

from sidecar.gate.labels import error_label
from sidecar.proxy.forwarder import UpstreamResponse

LABELLED = b'{"label": "INVALID_KEY", "message": "x"}'


@pytest.mark.parametrize(
    ("why", "status", "encoding", "body", "label"),
    [
        ("a plain error answer", 401, None, LABELLED, "INVALID_KEY"),
        (
            "a gzip-compressed error answer",
            401,
            "gzip",
            gzip.compress(LABELLED, mtime=0),
            "INVALID_KEY",
        ),
        (
            "a deflate-compressed error answer",
            401,
            "deflate",
            zlib.compress(LABELLED),
            "INVALID_KEY",
        ),
        ("a success, whatever its body says", 200, None, LABELLED, None),
        ("an error whose body is not JSON", 500, None, b"not json", None),
        ("an error whose label is not text", 400, None, b'{"label": 7}', None),
        ("an error body that claims gzip but is not", 400, "gzip", LABELLED, None),
    ],
)
def test_the_label_is_read_only_from_an_error_answer_gate_could_send(
    why: str, status: int, encoding: str | None, body: bytes, label: str | None
) -> None:
    assert error_label(status, encoding, body) == label


def test_an_upstream_response_reads_its_label_through_its_content_encoding() -> None:
    resp = UpstreamResponse(401, [("content-encoding", "gzip")], gzip.compress(LABELLED))
    assert resp.gate_label() == "INVALID_KEY"
