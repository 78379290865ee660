"""Signed notes and checkpoints: the golang.org/x/mod/sumdb/note reference vector
(Ed25519 is deterministic, so our signature must match it byte for byte), then
checkpoints signed and opened, and every kind of tampering refused."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from service.audit.signed_note import (
    NoteError,
    NoteVerifier,
    TreeHead,
    checkpoint_body,
    open_checkpoint,
    open_note,
    raw_public_key,
    sign_note,
)

GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_NOTE = (
    GO_TEXT
    + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_signing_reproduces_the_go_reference_note() -> None:
    key = Ed25519PrivateKey.from_private_bytes(GO_SEED)
    assert sign_note(GO_TEXT, "PeterNeumann", key) == GO_NOTE
    assert NoteVerifier("PeterNeumann", raw_public_key(key.public_key())).vkey() == GO_VKEY


def test_opening_the_go_reference_note() -> None:
    verifier = NoteVerifier.from_vkey(GO_VKEY)
    assert open_note(GO_NOTE, verifier) == GO_TEXT
    with pytest.raises(NoteError):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), verifier)


def test_verifier_keys_that_do_not_add_up_are_refused() -> None:
    with pytest.raises(NoteError):
        NoteVerifier.from_vkey(GO_VKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(NoteError):
        NoteVerifier.from_vkey("PeterNeumann+c74f20a3+not-base64")


def test_a_checkpoint_signed_and_opened() -> None:
    key = Ed25519PrivateKey.generate()
    head = TreeHead(origin="parley.test/log", tree_size=42, root=bytes(range(32)))
    note = sign_note(checkpoint_body(head), head.origin, key)
    assert note.startswith("parley.test/log\n42\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\n\u2014 parley.test/log ")
    verifier = NoteVerifier(head.origin, raw_public_key(key.public_key()))
    assert open_checkpoint(note, verifier) == head

    with pytest.raises(NoteError):  # another size under the same signature
        open_checkpoint(note.replace("\n42\n", "\n43\n"), verifier)
    with pytest.raises(NoteError):  # another key
        open_checkpoint(note, NoteVerifier(head.origin, raw_public_key(Ed25519PrivateKey.generate().public_key())))
    with pytest.raises(NoteError):  # signed, but for another log
        other = sign_note(checkpoint_body(TreeHead("elsewhere", 42, head.root)), head.origin, key)
        open_checkpoint(other, verifier)


def test_a_note_with_one_failing_signature_by_a_known_key_is_refused() -> None:
    """signed-note: a signature by a known key that fails makes the whole note refused,
    even beside a good one by the same key; lines by unknown keys are ignored. The
    independent verifier (tests/independent, no Parley code) agrees line for line."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey as Key,
    )

    from service.audit.signed_note import (
        CosignatureVerifier,
        cosign,
        cosignature_line,
        open_cosigned_checkpoint,
        signature_line,
    )
    from tests.independent import verifier as independent

    log, witness, stranger = Key.generate(), Key.generate(), Key.generate()
    head = TreeHead(origin="parley.test/log", tree_size=7, root=bytes(range(32)))
    body = checkpoint_body(head)
    good = sign_note(body, head.origin, log)
    log_verifier = NoteVerifier(head.origin, raw_public_key(log.public_key()))
    witness_public = raw_public_key(witness.public_key())
    witness_verifier = CosignatureVerifier("witness.test", witness_public)
    known = [independent.Key(log_verifier.vkey()), independent.Key(witness_verifier.vkey())]

    def both_accept(note: str) -> bool:
        try:
            open_cosigned_checkpoint(note, log_verifier, [witness_verifier])
        except NoteError:
            project = False
        else:
            project = True
        try:
            independent.open_note(note, known)
        except ValueError:
            theirs = False
        else:
            theirs = True
        assert project == theirs, note
        return project

    forged = bytes(64)  # a well-formed line whose signature is wrong
    cosigned = good + cosignature_line("witness.test", witness_public, cosign(body, "witness.test", witness, 1_700_000_000))
    assert both_accept(good) and both_accept(cosigned)
    # The log's key signs twice: once right, once wrong -> refused.
    assert not both_accept(good + signature_line(head.origin, log_verifier.key_id, forged))
    # A witness's cosignature that fails (its time altered) -> refused, the log's good one notwithstanding.
    bad_time = cosign(body, "witness.test", witness, 1_700_000_000)
    altered = (1_700_000_001).to_bytes(8, "big") + bad_time[8:]
    assert not both_accept(good + cosignature_line("witness.test", witness_public, altered))
    # The same bad bytes under a key nobody trusts are ignored (signed-note: unknown keys are skipped).
    stranger_public = raw_public_key(stranger.public_key())
    assert both_accept(good + cosignature_line("stranger.test", stranger_public, altered))
    assert both_accept(good + signature_line("stranger.test", b"\x00\x01\x02\x03", forged))
