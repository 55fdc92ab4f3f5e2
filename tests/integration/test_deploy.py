"""deploy/: the Kubernetes manifests and the systemd unit, checked as files.

Every manifest parses (python3-yaml) and has the kinds the issue asks for;
the warden Deployment's probes hit /livez and /readyz on the port the
ConfigMap's [health] listen names; the ConfigMap's config passes the real
`warden check-config`; the Secret holds placeholders only; every secret the
pods reference exists; the exec-probe overlay runs `wardenctl ping` within
its timeout. The systemd unit has the restart, reload and hardening
settings and passes `systemd-analyze verify` when that is installed."""
import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from wardenlib import BIN_DIR, SOURCE_DIR, WARDEN

yaml = pytest.importorskip("yaml", reason="python3-yaml is not installed")

K8S = SOURCE_DIR / "deploy" / "k8s"
UNIT = SOURCE_DIR / "deploy" / "systemd" / "warden.service"


def docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


@pytest.fixture(scope="module")
def objects():
    """(kind, name) -> object, from every manifest the base kustomization lists."""
    kust = docs(K8S / "kustomization.yaml")[0]
    out = {}
    for res in kust["resources"]:
        for d in docs(K8S / res):
            for k in ("apiVersion", "kind", "metadata"):
                assert k in d, "%s: a document without %s" % (res, k)
            key = (d["kind"], d["metadata"]["name"])
            assert key not in out, "%s twice" % (key,)
            out[key] = d
    listed = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == set(kust["resources"]), "manifests not in kustomization.yaml: %s" % (
        listed ^ set(kust["resources"]))
    return out


def warden_conf(objects):
    text = objects[("ConfigMap", "warden-config")]["data"]["warden.conf"]
    cp = configparser.ConfigParser(inline_comment_prefixes=(" ;",), comment_prefixes=(";", "#"),
                                   interpolation=None, strict=True)
    cp.read_string(text)
    return text, cp


def container(objects):
    dep = objects[("Deployment", "warden")]
    return dep, dep["spec"]["template"]["spec"]["containers"][0]


def test_kinds(objects):
    want = {("Deployment", "warden"), ("ConfigMap", "warden-config"), ("Secret", "warden-secrets"),
            ("Service", "warden"), ("Service", "redis"), ("Deployment", "redis"),
            ("Service", "postgres"), ("StatefulSet", "postgres")}
    assert want <= set(objects), want - set(objects)
    # Each Service selects the pods of its workload.
    for (kind, name), o in objects.items():
        if kind != "Service":
            continue
        sel = o["spec"]["selector"]
        assert any(w["spec"]["template"]["metadata"]["labels"].items() >= sel.items()
                   for (k, _), w in objects.items() if k in ("Deployment", "StatefulSet")), name


def test_probes_match_config(objects):
    text, cp = warden_conf(objects)
    host, port = cp["health"]["listen"].rsplit(":", 1)
    assert host == "0.0.0.0", "the kubelet probes the pod IP: listen must not be loopback"
    dep, c = container(objects)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["http"] == int(port)
    paths = {}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = c[probe]["httpGet"]
        assert get["port"] in ("http", int(port)), (probe, get)
        paths[probe] = get["path"]
        assert c[probe]["timeoutSeconds"] >= 2 and c[probe]["failureThreshold"] >= 2, probe
    assert paths == {"startupProbe": "/livez", "livenessProbe": "/livez",
                     "readinessProbe": "/readyz"}
    live = c["livenessProbe"]
    # A liveness probe faster than warden restarting a hung worker
    # (heartbeat_timeout) would restart the pod for a worker's hang.
    hb = max(int(cp[s]["heartbeat_timeout"].rstrip("s")) for s in cp.sections()
             if s.startswith("worker:") and "heartbeat_timeout" in cp[s])
    assert live["periodSeconds"] * live["failureThreshold"] > hb
    for k in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][k]), k
    # warden gets to stop its workers before the kubelet's SIGKILL.
    shutdown = int(cp["supervisor"]["shutdown_timeout"].rstrip("s"))
    assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > shutdown
    assert c["command"][-1] == "/etc/warden/warden.conf"


def test_config_passes_check_config(objects, tmp_path):
    text, cp = warden_conf(objects)
    assert cp["supervisor"]["run_dir"] == "/run/warden"
    conf = tmp_path / "warden.conf"
    conf.write_text(text)
    r = subprocess.run([str(WARDEN), "check-config", str(conf)], capture_output=True, text=True,
                       env={"PATH": "%s:/usr/bin:/bin" % BIN_DIR})
    assert r.returncode == 0, r.stdout + r.stderr


def test_secret_files_and_env_are_wired(objects):
    text, cp = warden_conf(objects)
    dep, c = container(objects)
    spec = dep["spec"]["template"]["spec"]
    secret = objects[("Secret", "warden-secrets")]
    keys = set(secret.get("stringData", {})) | set(secret.get("data", {}))
    # api_token_file is a file of the mounted Secret.
    token = cp["health"]["api_token_file"]
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    mdir, fname = token.rsplit("/", 1)
    vol = vols[mounts[mdir]["name"]]
    assert vol["secret"]["secretName"] == "warden-secrets"
    assert {i["path"]: i["key"] for i in vol["secret"]["items"]}[fname] in keys
    # run_dir is writable (an emptyDir) under a read-only root.
    assert "emptyDir" in vols[mounts[cp["supervisor"]["run_dir"]]["name"]]
    # Every secretKeyRef of every workload names a key that exists.
    for (kind, name), o in objects.items():
        if kind not in ("Deployment", "StatefulSet"):
            continue
        for ctr in o["spec"]["template"]["spec"]["containers"]:
            for e in ctr.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "warden-secrets" and ref["key"] in keys, (name, e)
    # The Redis URL override has the name common/config.c looks for.
    envs = {e["name"] for e in c["env"]}
    assert "WARDEN_AGGREGATOR_REDIS_URL" in envs and "redis_url" in cp["aggregator"]


TOKENISH = re.compile(r"[A-Za-z0-9+/_\-]{24,}")
KNOWN_SECRET_SHAPES = re.compile(r"xox[abpr]-|hooks\.slack\.com/services/T|ghp_|AKIA[0-9A-Z]{12}|"
                                 r"-----BEGIN|sk_live_")


def test_secret_holds_placeholders_only(objects):
    secret = objects[("Secret", "warden-secrets")]
    assert "data" not in secret, "base64 data hides what is committed: use stringData placeholders"
    values = secret["stringData"]
    assert {"api-token", "redis-url"} <= set(values)
    assert any("webhook" in k for k in values), "no webhook URL placeholder"
    for k, v in values.items():
        assert "REPLACE_ME" in v, "%s is not a placeholder: %r" % (k, v)
        rest = v.replace("REPLACE_ME", "")
        assert not TOKENISH.search(rest) and not KNOWN_SECRET_SHAPES.search(v), (k, v)
    # No manifest other than the Secret carries a password or token value.
    for p in K8S.rglob("*.yaml"):
        if p.name == "warden-secret.yaml":
            continue
        assert not KNOWN_SECRET_SHAPES.search(p.read_text()), p
        assert not re.search(r"://[^/\s:@]*:[^@\s]+@", p.read_text()), "%s: credentials in a URL" % p


def test_exec_probe_overlay():
    kust = docs(K8S / "overlays" / "exec-probe" / "kustomization.yaml")[0]
    assert kust["resources"] == ["../.."]
    (patch_ref,) = kust["patches"]
    assert patch_ref["target"] == {"kind": "Deployment", "name": "warden"}
    (op,) = docs(K8S / "overlays" / "exec-probe" / patch_ref["path"])[0]
    assert op["op"] == "replace" and op["path"].endswith("/containers/0/livenessProbe")
    cmd = op["value"]["exec"]["command"]
    assert cmd[0] == "wardenctl" and cmd[-1] == "ping"
    t_ms = int(cmd[cmd.index("-t") + 1])
    assert op["value"]["timeoutSeconds"] * 1000 > t_ms, "wardenctl must time out first"
    assert cmd[cmd.index("-s") + 1] == "/run/warden/control.sock"


def unit():
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str
    cp.read_string(UNIT.read_text())
    return cp


def test_systemd_unit_settings():
    s = unit()["Service"]
    assert s["Type"] == "simple" and s["Restart"] == "on-failure"
    assert s["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert s["ExecStart"].endswith("warden -c /etc/warden/warden.conf")
    for k, v in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
                 "ProtectHome": "yes", "RuntimeDirectory": "warden"}.items():
        assert s[k] == v, k
    assert "/run/warden" in s["ReadWritePaths"].split()
    assert int(s["TimeoutStopSec"].rstrip("s")) > 30  # shutdown_timeout's default
    assert "StartLimitBurst" in unit()["Unit"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path):
    # Point the unit at the binary just built, so verify checks everything
    # but the install location.
    text = UNIT.read_text().replace("/usr/local/bin/warden", str(WARDEN))
    path = tmp_path / "warden.service"
    path.write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True)
    ours = [line for line in (r.stdout + r.stderr).splitlines() if "warden.service" in line]
    assert r.returncode == 0 and not ours, r.stdout + r.stderr
