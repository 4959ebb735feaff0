"""End to end in a real browser: JupyterLab serves a copy of the workbook, Chromium runs it.

nbval and nbclient prove the cells run, not that a learner sees what the workbook promises: the
partition grid as a live widget (not its static HTML fallback), the quiz as clickable radio
buttons, and a click that lands in the kernel's ``answers``. Only a browser shows that.

Needs Debian's ``chromium`` at /usr/bin/chromium and Playwright for Python (never
``playwright install``: the system browser is used); skipped without them. The server runs on a
free loopback port without a token, on a temporary copy of notebooks/, exercises/ and solutions/,
with its config, runtime and IPython dirs and the progress file in the test's temporary
directory: nothing in the repository or the home directory is touched. Screenshots are saved
next to that copy (the path is printed; ``pytest -s`` shows it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from backfill_lab.course.quiz import LETTERS, QUESTIONS, load_key

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
)

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Locator, Page

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("notebooks", "exercises", "solutions")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
# JupyterLab user settings for the run: no "official Jupyter news?" toast over the page, and
# every cell kept in the DOM (the default windowing may detach cells scrolled out of view).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false"},
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}
BUDGET_S = 300  # the whole module (~40 s here); each wait below is also capped by what is left
SERVER_START_S = 60
RUN_ALL_S = 90  # notebook 01 runs in ~5 s here; generous for a loaded CI machine
ACTION_MS = 30_000
PROMPT_DONE = re.compile(r"^\[\d+\]:$")
STDOUT = '[data-mime-type="application/vnd.jupyter.stdout"]'


@dataclass(frozen=True)
class Budget:
    """One deadline for the whole module, so many generous waits cannot add up to a hang."""

    end: float

    @classmethod
    def of(cls, seconds: float) -> Budget:
        return cls(time.monotonic() + seconds)

    def seconds(self, cap: float) -> float:
        """``cap``, or less when the module's budget runs out first (never below 1 s)."""
        return max(1.0, min(cap, self.end - time.monotonic()))

    def ms(self, cap_s: float) -> float:
        return 1000 * self.seconds(cap_s)


# -- the server -----------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_settings(config_dir: Path) -> None:
    for name, values in LAB_SETTINGS.items():
        path = config_dir / "lab" / "user-settings" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values), encoding="utf-8")


def _wait_until_serving(url: str, proc: subprocess.Popen[bytes], log: Path,
                        budget: Budget) -> None:
    deadline = time.monotonic() + budget.seconds(SERVER_START_S)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    pytest.fail(f"jupyter lab did not answer in time:\n{_tail(log)}")


def _tail(log: Path, lines: int = 30) -> str:
    text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def _stop(pid: int, proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the server then shuts its kernels down), SIGKILL if it hangs; always reaped."""
    if proc.poll() is not None:
        return
    os.kill(pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def budget() -> Budget:
    return Budget.of(BUDGET_S)


@pytest.fixture(scope="module")
def lab_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway copy of the workbook's folders: the browser's runs and saves land here."""
    root = tmp_path_factory.mktemp("browser") / "root"
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, root / folder,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return root


@pytest.fixture(scope="module")
def lab(lab_root: Path, budget: Budget) -> Iterator[str]:
    """``jupyter lab`` on a free loopback port, no token; stopped by its own PID afterwards."""
    state = lab_root.parent
    port = _free_port()
    config = state / "jupyter-config"
    _write_settings(config)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(state / "jupyter-runtime"),
        "IPYTHONDIR": str(state / "ipython"),
        "BACKFILL_LAB_PROGRESS": str(state / "progress.json"),
        # the python3 kernelspec runs "python": jupyter_client maps it to the server's own
        # interpreter, and the venv's bin comes first for anything else
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    env.pop("BACKFILL_LAB_GRADING", None)
    pid_file, log = state / "server.pid", state / "server.log"
    command = [
        "sh", "-c", 'echo $$ > "$0"; exec "$@"', str(pid_file),
        sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser",
        "--ServerApp.open_browser=False", f"--port={port}", "--port-retries=0",
        "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=",
        f"--ServerApp.root_dir={lab_root}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        # saving signs the notebook: keep the signature store and its secret out of ~/.local
        "--NotebookNotary.db_file=:memory:", f"--NotebookNotary.secret_file={state / 'secret'}",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=lab_root, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    pid = proc.pid  # `exec` keeps the PID: it is jupyter's own, as pid_file confirms
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_until_serving(url, proc, log, budget)
        assert int(pid_file.read_text().strip()) == pid
        yield url
    finally:
        _stop(pid, proc)
    leftovers = sorted(p.name for p in (state / "jupyter-runtime").glob("kernel-*.json"))
    assert not leftovers, f"kernels still running after the server stopped: {leftovers}"


@pytest.fixture(scope="module")
def browser(lab_root: Path) -> Iterator[BrowserContext]:
    """The system Chromium, headless, with a fresh profile."""
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(lab_root.parent / "chromium-profile"), executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS, headless=True, viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(ACTION_MS)
        sync_api.expect.set_options(timeout=ACTION_MS)
        try:
            yield context
        finally:
            context.close()


# -- driving JupyterLab ---------------------------------------------------------------------
def _open(browser: BrowserContext, lab: str, path: str,
          budget: Budget) -> tuple[Page, Locator]:
    """Open ``path`` in a workspace of its own and wait until its kernel is connected and idle
    ("Run All" sent before that is silently dropped)."""
    page = browser.new_page()
    workspace = re.sub(r"\W", "-", Path(path).stem)
    page.goto(f"{lab}/lab/workspaces/{workspace}/tree/{path}", timeout=budget.ms(60))
    panel = page.locator(".jp-NotebookPanel").filter(visible=True)
    sync_api.expect(panel).to_have_count(1, timeout=budget.ms(60))
    status = page.locator("#jp-main-statusbar")
    sync_api.expect(status).to_contain_text("| Idle", timeout=budget.ms(60))
    return page, panel


def _run_all(page: Page, panel: Locator, budget: Budget) -> list[str]:
    """Run > Run All Cells, then wait for every code cell to finish (or the run to stop)."""
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    prompts = panel.locator(".jp-CodeCell .jp-InputPrompt")
    indicator = panel.locator(".jp-Notebook-ExecutionIndicator")
    deadline = time.monotonic() + budget.seconds(RUN_ALL_S)
    while True:
        texts = [t.strip() for t in prompts.all_inner_texts()]
        idle = indicator.get_attribute("data-status") == "idle"
        if idle and texts and PROMPT_DONE.match(texts[0]) and not any("*" in t for t in texts):
            return texts
        if time.monotonic() > deadline:
            pytest.fail(f"Run All did not finish in time; prompts: {texts}")
        page.wait_for_timeout(250)


def _saved_outputs(page: Page, panel: Locator, file: Path) -> list[dict[str, Any]]:
    """Save the notebook from the page and read back the outputs it holds, per code cell.

    Error outputs render exactly like stderr in the DOM; the saved ``output_type`` tells them
    apart for sure.
    """
    before = file.stat().st_mtime_ns
    panel.locator('[data-command="docmanager:save"]').click()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if file.stat().st_mtime_ns != before:
            try:
                cells = json.loads(file.read_text(encoding="utf-8"))["cells"]
            except ValueError:  # caught mid-write
                cells = []
            code = [c for c in cells if c["cell_type"] == "code"]
            if code:
                return code
        page.wait_for_timeout(250)
    pytest.fail(f"saving {file.name} from the page did not write it within 30 s")


def _errors(cells: list[dict[str, Any]]) -> list[str]:
    return [f"cell [{c['execution_count']}]: {o.get('ename')}: {o.get('evalue')}"
            for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]


def _assert_clean_run(page: Page, panel: Locator, file: Path, prompts: list[str]) -> None:
    outputs = _saved_outputs(page, panel, file)
    assert not _errors(outputs), _errors(outputs)
    assert all(PROMPT_DONE.match(p) for p in prompts), f"cells left unrun: {prompts}"


def _screenshot(page: Page, target: Locator, path: Path) -> None:
    target.scroll_into_view_if_needed()
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")


# -- the tests ------------------------------------------------------------------------------
def _shots(page: Page, targets: Locator, folder: Path, name: str) -> list[Path]:
    """A screenshot per target (scrolled into view) in ``$BACKFILL_LAB_SHOTS`` (default:
    ``folder``); the paths are printed."""
    folder = Path(os.environ.get("BACKFILL_LAB_SHOTS") or folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(targets.count()):
        path = folder / f"{name}-{i + 1:02d}.png"
        _screenshot(page, targets.nth(i), path)
        paths.append(path)
    return paths


def _states(grid: Locator) -> dict[str, int]:
    """Boxes per state of one drawn grid, counted in the browser's DOM."""
    return {s: grid.locator(f"td.bfg-{s}").count() for s in ("ok", "missing", "failed",
                                                                "invalid", "stale")}


def test_mental_model_pictures_keep_their_moment_and_the_run_is_live(
        browser: BrowserContext, lab: str, lab_root: Path, budget: Budget) -> None:
    page, panel = _open(browser, lab, "notebooks/01_mental_model.ipynb", budget)
    prompts = _run_all(page, panel, budget)
    _assert_clean_run(page, panel, lab_root / "notebooks" / "01_mental_model.ipynb", prompts)

    pictures = panel.locator(".backfill-grid-static")
    sync_api.expect(pictures.first).to_be_visible()
    # one frozen picture per display (issue 13): empty, 4 days, outage, bug, catchup, 2 twins,
    # and the repaired grid; the backfill's own cell holds the one live widget
    assert pictures.count() == 8, pictures.count()
    live = panel.locator(".backfill-grid")
    sync_api.expect(live).to_have_count(1)
    sync_api.expect(live).to_have_class(re.compile(r"\bjupyter-widgets\b"))
    sync_api.expect(live.locator(".backfill-grid-cells .backfill-grid-view table")).to_have_count(1)
    sync_api.expect(live.locator(".backfill-grid-progress")).to_have_count(1)
    sync_api.expect(live).to_contain_text("1/1 steps done")
    counts = [_states(pictures.nth(i)) for i in range(pictures.count())]
    assert counts[0]["missing"] == 30  # drawn before anything ran, still empty after Run All
    assert counts[2]["failed"] == 1  # "raw of 5 December is red", under that very text
    assert counts[3]["invalid"] == 1 and counts[-1]["invalid"] == counts[-1]["failed"] == 0
    assert _states(live)["ok"] == counts[-1]["ok"] == 24
    assert "no backfill followed yet" not in panel.inner_text()
    _shots(page, pictures, lab_root.parent, "01-picture")
    _shots(page, live, lab_root.parent, "01-live")
    page.close()


def test_daily_backfill_shows_the_abort_where_it_happens(
        browser: BrowserContext, lab: str, lab_root: Path, budget: Budget) -> None:
    page, panel = _open(browser, lab, "notebooks/02_daily_backfill.ipynb", budget)
    prompts = _run_all(page, panel, budget)
    _assert_clean_run(page, panel, lab_root / "notebooks" / "02_daily_backfill.ipynb", prompts)
    live = panel.locator(".backfill-grid")
    sync_api.expect(live).to_have_count(3)  # the aborted run, the resume, the features fix
    aborted = live.first
    # how many steps finish before the deploy stops it depends on timing; it never reads done
    stopped = re.compile(r"stopped: \d+/21 steps ran \(.*\d cancelled\)")
    sync_api.expect(aborted).to_contain_text(stopped)
    bar = aborted.locator(".backfill-grid-progress")
    html = bar.inner_html()
    assert "progress-bar-success" not in html  # not green: warning, or danger after a failure
    assert "progress-bar-warning" in html or "progress-bar-danger" in html
    pictures = panel.locator(".backfill-grid-static")
    before, after_abort, after = pictures.first, pictures.nth(1), pictures.last
    assert _states(before)["failed"] == 13 and _states(after)["ok"] == 84
    assert 0 < _states(after_abort)["failed"] < 13  # half a week is back
    _shots(page, pictures, lab_root.parent, "02-picture")
    _shots(page, live, lab_root.parent, "02-live")
    # the pins (issue 13): the ledger shows the config and runtime each row ran with, and a
    # plan pinned to the old config is refused, in the cells that say so
    ledger = panel.locator(".jp-OutputArea-output table").filter(has_text="config_hash")
    sync_api.expect(ledger).to_have_count(1)
    sync_api.expect(ledger).to_contain_text("sha256:")
    refused = panel.locator(".jp-OutputArea-output").filter(
        has_text="refused: backfill pinned to config")
    sync_api.expect(refused).to_have_count(1)
    _shots(page, ledger, lab_root.parent, "02-pins-ledger")
    _shots(page, refused, lab_root.parent, "02-pins-refused")
    page.close()


def test_quiz_clicks_fill_answers_in_the_kernel(browser: BrowserContext, lab: str,
                                                lab_root: Path, budget: Budget) -> None:
    key = load_key(lab_root / "exercises")
    assert key is not None, "the copy holds solutions/, so the form runs in self-study mode"
    first, second = QUESTIONS[0].id, QUESTIONS[1].id
    right = key[first]["answer"]
    wrong = next(letter for letter in LETTERS if letter != key[second]["answer"])

    page, panel = _open(browser, lab, "exercises/quick_test.ipynb", budget)
    prompts = _run_all(page, panel, budget)
    _assert_clean_run(page, panel, lab_root / "exercises" / "quick_test.ipynb", prompts)

    form = panel.locator(".backfill-quiz")
    sync_api.expect(form.first).to_be_visible()
    disabled = form.first.locator("input:disabled").count()
    assert disabled == 0, f"the quiz fell back to static HTML ({disabled} disabled radios)"
    sync_api.expect(form).to_have_count(1)
    sync_api.expect(form).to_have_class(re.compile(r"\bjupyter-widgets\b"))
    questions = form.locator(".backfill-quiz-question")
    sync_api.expect(questions).to_have_count(len(QUESTIONS))
    radios = questions.locator("input[type=radio]")
    sync_api.expect(radios).to_have_count(4 * len(QUESTIONS))

    for n, (letter, verdict) in enumerate([(right, "right."), (wrong, "not quite.")]):
        question = questions.nth(n)
        question.get_by_role("radio", name=re.compile(rf"^{letter}\)")).check()
        # the kernel's answer comes back as feedback under the question
        sync_api.expect(question.locator(".backfill-quiz-feedback")).to_contain_text(verdict)
    _screenshot(page, questions.first, lab_root.parent / "quick_test.png")

    # a new cell at the end, typed and run with the notebook's own keys, prints the answers
    code = "print(sorted(answers.items()))"
    panel.locator(".jp-Cell").last.locator(".jp-InputPrompt").click()
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.type(code)
    page.keyboard.press("Shift+Enter")
    new_cell = panel.locator(".jp-CodeCell").filter(has_text=code)
    printed = new_cell.locator(f".jp-OutputArea-output{STDOUT}")
    sync_api.expect(printed).to_have_text(str(sorted({first: right, second: wrong}.items())))
    _screenshot(page, new_cell, lab_root.parent / "quick_test_answers.png")
    page.close()


def test_exercise_run_then_self_check_in_the_browser(
        browser: BrowserContext, lab: str, lab_root: Path, budget: Budget) -> None:
    """The learner's path through an exercise (issue 15): Run All on the solution of exercise 1
    shows the incident, the plan's live replay filled to the end, and a self-check with full
    marks (the self-check takes the replay started beside the live one)."""
    page, panel = _open(browser, lab, "solutions/ex1_december_backfill.ipynb", budget)
    prompts = _run_all(page, panel, budget)
    _assert_clean_run(page, panel, lab_root / "solutions" / "ex1_december_backfill.ipynb",
                      prompts)
    live = panel.locator(".backfill-grid").filter(has_text="steps done")
    sync_api.expect(live).to_have_count(1)
    sync_api.expect(live).to_have_class(re.compile(r"\bjupyter-widgets\b"))
    sync_api.expect(live).to_contain_text("93/93 steps done")
    incident = panel.locator(".backfill-incident + .backfill-grid-static, "
                             ".backfill-grid-static").first
    # the incident as staged, frozen: every December box of raw failed, of the layers below
    # missing (no run follows that copy, so no progress bar waits under it)
    assert _states(incident)["failed"] == 31 and _states(incident)["missing"] == 62
    assert "waiting for the first step" not in panel.inner_text()
    _shots(page, panel.locator(".backfill-grid, .backfill-grid-static"), lab_root.parent,
           "ex1-grid")
    check = panel.locator(".backfill-report").filter(has_text="Self-check ex1:").first
    sync_api.expect(check).to_be_visible()
    title = re.search(r"Self-check ex1: (\d+) / (\d+) points", check.inner_text())
    assert title is not None and title.group(1) == title.group(2), check.inner_text()[:200]
    _shots(page, live, lab_root.parent, "ex1-live")
    _shots(page, check, lab_root.parent, "ex1-check")
    page.close()
