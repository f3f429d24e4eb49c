"""Screenshots of the MLflow UI on a small tdml store, taken in a real (headless) browser.

Builds a store the way a new user would -- the main job on the embedded synthetic data and two
more distill runs with other weights, all tiny -- starts ``mlflow server`` on loopback and takes
headless-Chromium screenshots of the ``tdml`` experiment's runs table, a compare view of the
teacher and its students, and the registered student's page, into ``docs/img/``. Not part of
the tests; needs Debian's ``chromium`` (``apt-get install -y chromium``). About 2 minutes on
2 CPU cores.

    python docs/screenshots.py [--out docs/img] [--store DIR] [--chromium chromium]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from mlflow.tracking import MlflowClient

TINY = ["--seq-len", "48", "--pred-len", "12", "--epochs", "2", "--no-progress",
        "--set", "train.max_batches=20", "--set", "tracking.latency_repeats=2"]
TEACHER = "synthetic-itransformer-L48-H12"
STUDENT = f"{TEACHER}-student-mlp"
SIZE = (1600, 1000)


def tdml(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "-m", "tdml.cli", *args], env=env, check=True)


def build_store(env: dict[str, str]) -> None:
    """Teacher, MLP alone, MLP distilled (the main job), and two more weightings."""
    tdml(env, "main", *TINY)
    for alpha, beta in (("0.5", "1"), ("2", "0")):
        tdml(env, "distill", "--teacher", f"models:/{TEACHER}@champion", "--alpha", alpha, "--beta", beta,
             "--epochs", "2", "--no-progress", "--set", "train.max_batches=20", "--set", "tracking.latency_repeats=2")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(uri: str, root: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
                             "--default-artifact-root", str(root / "mlruns"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # no job runner
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"mlflow server did not start on {url}")


def pages(client: MlflowClient, url: str) -> list[tuple[str, str, str, dict]]:
    """(file name, UI address, text the rendered page shows, localStorage for it) of the runs
    table (main job expanded; method, weights, test MSE, size, latency as columns), the compare
    view of the teacher and its students, and the registered student's champion version."""
    exp = client.get_experiment_by_name("tdml").experiment_id
    runs = client.search_runs([exp], "attributes.status = 'FINISHED'")
    main_run = next(r.info.run_id for r in runs if r.data.tags.get("tdml.role") == "pipeline")
    compared = [r.info.run_id for r in runs if r.data.tags.get("tdml.role") in ("teacher", "student")]
    champion = client.get_model_version_by_alias(STUDENT, "champion")
    cols = [f"params.`{k}`" for k in ("method", "alpha", "beta")] + \
           [f"metrics.`{k}`" for k in ("test_mse", "n_params", "cpu_latency_ms_b32")]
    table = {"selectedColumns": cols, "columnOrder": ["attributes.`Run Name`", "runDateAndNestInfo", "duration", *cols],
             "columnWidths": {"attributes.`Run Name`": 480}, "runsExpanded": {main_run: True}}
    quote, ml = urllib.parse.quote, "workflowType=machine_learning"
    return [
        ("runs_table.png", f"{url}/#/experiments/{exp}/runs?{ml}", "teacher itransformer",
         {f'MLflowLocalStorage-1.1-ExperimentPage-["{exp}"]-ReactComponentState': table}),
        ("compare_teacher_students.png", f"{url}/#/compare-runs?runs={quote(json.dumps(compared))}"
         f"&experiments={quote(json.dumps([exp]))}&{ml}", "teacher itransformer synthetic", {}),
        ("registered_model.png", f"{url}/#/models/{quote(STUDENT)}/versions/{champion.version}?{ml}",
         f"Version {champion.version}", {}),
    ]


# the UI's own keys (MLflow 3.17): the training-runs view, no assistant panel opening over the page
UI_STATE = {"mlflow.workflowType_v1": "machine_learning", "mlflow.assistant.panelOpen_v1": False,
            "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": True}


class Browser:
    """A headless Chromium driven over the DevTools protocol (aiohttp's websocket client, which
    MLflow already depends on)."""

    def __init__(self, chromium: str, profile: Path):
        port = free_port()
        self.proc = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                      f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
                                      f"--window-size={SIZE[0]},{SIZE[1]}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.devtools, self.ids = f"http://127.0.0.1:{port}", itertools.count(1)

    async def __aenter__(self):
        import aiohttp

        for _ in range(100):
            try:
                urllib.request.urlopen(f"{self.devtools}/json/version", timeout=1)
                break
            except OSError:
                await asyncio.sleep(0.2)
        self.http = aiohttp.ClientSession()
        targets = await (await self.http.get(f"{self.devtools}/json/list")).json()
        page = next(t for t in targets if t["type"] == "page")
        self.ws = await self.http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Emulation.setDeviceMetricsOverride", width=SIZE[0], height=SIZE[1], deviceScaleFactor=1,
                        mobile=False)
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()
        await self.http.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)

    async def call(self, method: str, **params):
        i = next(self.ids)
        await self.ws.send_json({"id": i, "method": method, "params": params})
        async for msg in self.ws:
            data = json.loads(msg.data)
            if data.get("id") == i:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return data.get("result", {})
        raise RuntimeError(f"{method}: the browser closed the connection")

    async def js(self, expression: str):
        r = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return r.get("result", {}).get("value")

    async def shoot(self, address: str, shows: str, storage: dict, out: Path, timeout: float = 90) -> None:
        """Open ``address`` with ``storage`` in localStorage, wait until the page shows ``shows``
        and no spinner, then save a PNG; fail naming the page if it never renders."""
        await self.call("Page.navigate", url=address)
        await asyncio.sleep(2)
        items = {**UI_STATE, **storage}
        await self.js(f"Object.entries({json.dumps(items)}).forEach(([k, v]) => localStorage.setItem(k, JSON.stringify(v)))")
        await self.call("Page.reload", ignoreCache=True)  # the app reads that state when it starts
        await asyncio.sleep(1)
        ready = (f"document.body.innerText.includes({json.dumps(shows)}) && "
                 "!document.querySelector('[class*=spinner], [class*=Spinner], [aria-busy=true]')")
        deadline = time.monotonic() + timeout
        while not await self.js(ready):
            if time.monotonic() > deadline:  # keep what it showed, to see why
                failed = out.with_name(out.stem + ".failed.png")
                failed.write_bytes(base64.b64decode((await self.call("Page.captureScreenshot"))["data"]))
                raise SystemExit(f"{address} did not render {shows!r} within {timeout:.0f} s; it showed {failed}")
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # charts and column widths settle
        shot = await self.call("Page.captureScreenshot", format="png")
        out.write_bytes(base64.b64decode(shot["data"]))


async def screenshots(chromium: str, shots, out_dir: Path, profile: Path) -> None:
    async with Browser(chromium, profile) as browser:
        for name, address, shows, storage in shots:
            await browser.shoot(address, shows, storage, out_dir / name)
            print(f"{out_dir / name}  <- {address}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "img")
    ap.add_argument("--store", type=Path, help="folder of the store (default: a temporary one, removed)")
    ap.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = ap.parse_args()
    args.out = args.out.resolve()  # before the chdir below
    root = (args.store or Path(tempfile.mkdtemp(prefix="tdml-screens-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "TQDM_DISABLE": "1"}
    for k in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        env.pop(k, None)
    os.chdir(root)  # ./mlruns artifacts land in the store folder
    if not (root / "mlflow.db").exists():
        build_store(env)
    proc, url = start_server(uri, root)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="tdml-chromium-") as profile:
            asyncio.run(screenshots(args.chromium, pages(MlflowClient(uri), url), args.out, Path(profile)))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if args.store is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
