"""The screenshots of docs/mlflow.md: the MLflow UI in headless Chromium, over a store made by
``make run``, a ``--register`` run and one sweep (docs/mlflow.md says how).

    .venv/bin/python docs/screenshots.py --store mlflow.db --out docs/img

Starts ``mlflow ui`` on the store (127.0.0.1, a free port) and a fresh Chromium (``chromium``, Debian's
package; a new profile, so the UI sees what a new user's browser sees), drives it over the DevTools
protocol (aiohttp's websocket client, which Ray brings), waits until each page shows the text that
says it has loaded, and writes one PNG per view. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


# Before each shot: MLflow 3.17 opens its "MLflow Assistant" panel (a third of the window) on the first
# page a fresh browser shows; its close button is pressed, as a user would (it stays closed). Plotly's
# chart toolbars, drawn over every chart in a headless window, are hidden.
CLOSE_ASSISTANT = """(() => {
  for (const close of document.querySelectorAll('button[aria-label="Close"]')) {
    for (let box = close.parentElement, i = 0; box && i < 6; box = box.parentElement, i++) {
      if (box.textContent.includes('MLflow Assistant')) { close.click(); return 'assistant closed'; }
    }
  }
  return 'no assistant panel';
})()"""
HIDE_TOOLBARS = """(() => {
  const style = document.createElement('style');
  style.textContent = '.modebar-container { display: none !important; }';
  document.head.appendChild(style);
  return 'toolbars hidden';
})()"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout_s: float = 60.0) -> str:
    deadline = time.time() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.3)


class Page:
    """One Chromium tab over the DevTools protocol."""

    def __init__(self, ws: Any) -> None:
        self.ws, self.next_id = ws, 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    async def js(self, expression: str) -> Any:
        out = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        return out.get("result", {}).get("value")

    async def wait_text(self, texts: list[str], timeout_s: float = 40.0) -> None:
        deadline = time.time() + timeout_s
        check = " && ".join(f"document.body.innerText.includes({json.dumps(t)})" for t in texts)
        while not await self.js(f"!!document.body && {check}"):
            if time.time() > deadline:
                body = await self.js("document.body ? document.body.innerText.slice(0, 1500) : ''")
                raise TimeoutError(f"page never showed {texts}; it shows:\n{body}")
            await asyncio.sleep(0.3)

    async def shot(
        self, url: str, path: Path, texts: list[str], size: tuple[int, int], actions: list[str] = ()
    ) -> None:
        await self.call(
            "Emulation.setDeviceMetricsOverride",
            width=size[0],
            height=size[1],
            deviceScaleFactor=1,
            mobile=False,
        )
        await self.call("Page.navigate", url=url)
        await self.wait_text(texts)
        for action in [CLOSE_ASSISTANT, HIDE_TOOLBARS, *actions]:
            print(f"  {path.name}: {await self.js(action)}")
            await asyncio.sleep(1.0)
        await asyncio.sleep(2.5)  # charts draw after their data arrives
        png = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(png["data"]))
        print(f"wrote {path} ({url})")


def views(client: Any, base: str) -> list[tuple[str, str, list[str], tuple[int, int], list[str]]]:
    """(file, url, texts that mean loaded, window size, JS to run before the shot) for each picture."""
    ml = "?workflowType=machine_learning"
    dqn = client.get_experiment_by_name("adl-dqn")
    runs = client.search_runs([dqn.experiment_id], order_by=["attributes.start_time ASC"])
    run = runs[0]  # `make run`
    exp_id, run_id = dqn.experiment_id, run.info.run_id
    registered = client.search_registered_models()[0]
    version = max(int(v.version) for v in client.search_model_versions(f"name='{registered.name}'"))
    # The --register run's best_model (the version's source is models:/<its id>).
    best_id = client.get_model_version(registered.name, str(version)).source.removeprefix("models:/")
    sweep = next(
        (e for e in client.search_experiments() if e.name.startswith("adl-") and e.name != "adl-dqn"), None
    )
    out = [
        (
            "mlflow_experiment_runs.png",
            f"{base}/#/experiments/{exp_id}/runs{ml}",
            ["dqn-CartPole-v1-s0"],
            (1500, 380),
            [],
        ),
        (
            "mlflow_run_overview.png",
            f"{base}/#/experiments/{exp_id}/runs/{run_id}{ml}",
            ["Result:", "best_model"],
            (1500, 1250),
            [],
        ),
        (
            "mlflow_run_metrics.png",
            f"{base}/#/experiments/{exp_id}/runs/{run_id}/model-metrics{ml}",
            ["eval", "learner", "train"],
            (1500, 1300),
            [],
        ),
        (
            "mlflow_logged_model.png",
            f"{base}/#/experiments/{exp_id}/models/{best_id}{ml}",
            ["best_model", "eval/return"],
            (1500, 1000),
            [],
        ),
        (
            "mlflow_registered_model.png",
            f"{base}/#/models/{registered.name}/versions/{version}{ml}",
            [registered.name, f"Version {version}"],
            (1500, 560),
            [],
        ),
    ]
    if sweep is not None:
        parents = client.search_runs([sweep.experiment_id], filter_string="tags.`adl.kind` = 'sweep'")
        if parents:
            parent = parents[0]
            out.append(
                (
                    "mlflow_sweep_parent.png",
                    f"{base}/#/experiments/{sweep.experiment_id}/runs/{parent.info.run_id}{ml}",
                    ["Best trial", "varying"],
                    (1500, 1000),
                    [],
                )
            )
            children = client.search_runs(
                [sweep.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'"
            )
            ids = json.dumps([c.info.run_id for c in children])
            out.append(
                (
                    "mlflow_sweep_compare.png",
                    f"{base}/#/compare-runs?runs={ids}&experiments={json.dumps([sweep.experiment_id])}&workflowType=machine_learning",
                    ["Parallel Coordinates Plot"],
                    (1500, 820),
                    [],
                )
            )
    return out


async def capture(base: str, debug_port: int, shots: list[Any], out: Path) -> None:
    import aiohttp

    tabs = json.loads(wait_http(f"http://127.0.0.1:{debug_port}/json"))
    ws_url = next(t["webSocketDebuggerUrl"] for t in tabs if t.get("type") == "page")
    async with aiohttp.ClientSession() as session, session.ws_connect(ws_url, max_msg_size=0) as ws:
        page = Page(ws)
        await page.call("Page.enable")
        await page.call("Runtime.enable")
        for name, url, texts, size, actions in shots:
            await page.shot(url, out / name, texts, size, actions)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default="mlflow.db", help="the sqlite store (default: ./mlflow.db)")
    ap.add_argument("--out", default="docs/img", help="folder for the PNGs")
    ap.add_argument("--only", nargs="*", help="file names to take (default: all)")
    args = ap.parse_args()
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{Path(args.store).resolve()}"
    client = MlflowClient(uri)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs Chromium on PATH (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    ui_port, debug_port = free_port(), free_port()
    base = f"http://127.0.0.1:{ui_port}"
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    ui = subprocess.Popen(
        [str(mlflow_bin), "ui", "--host", "127.0.0.1", "--port", str(ui_port), "--workers", "1"]
        + ["--backend-store-uri", uri],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with tempfile.TemporaryDirectory() as profile:
        browser = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--remote-debugging-port={debug_port}", f"--user-data-dir={profile}"]
            + ["about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_http(f"{base}/health", timeout_s=300)  # its imports take ~25 s on a busy 2-core box
            shots = [s for s in views(client, base) if not args.only or s[0] in args.only]
            out = Path(args.out)
            out.mkdir(parents=True, exist_ok=True)
            asyncio.run(capture(base, debug_port, shots, out))
        finally:
            browser.terminate()
            ui.terminate()
            browser.wait(10)
            ui.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
