import subprocess
import sys

from argon2 import PasswordHasher

from tests.fixtures.services import ROOT


def test_hash_password_command_prints_a_verifiable_argon2_hash() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "chemwatch", "alerting", "--hash-password"],
        input="s3cret-pass\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    hashed = result.stdout.strip()
    assert hashed.startswith("$argon2id$")
    assert "s3cret-pass" not in hashed
    assert PasswordHasher().verify(hashed, "s3cret-pass")
