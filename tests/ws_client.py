"""A minimal Streamlit client speaking the browser's websocket protocol (protobuf BackMsg and
ForwardMsg over /_stcore/stream), for load tests where 20 Chromium renderers would eat the CPU
the server is being measured on. It does what the page's JavaScript does for bnviz: open a page
with a query string, press a button by its label, and honour the server's auto-rerun requests
(the live panel's one-second poll), collecting every alert text the server sends.
"""
from __future__ import annotations

import asyncio
import time
from urllib.parse import parse_qs

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ALERT = {1: "error", 2: "warning", 3: "info", 4: "success"}


class StreamlitClient:
    def __init__(self, url: str, query: str = "", page_name: str = "lab"):
        self.ws_url = url.replace("http://", "ws://") + "/_stcore/stream"
        self.query = query
        self.buttons: dict[str, str] = {}  # label -> widget id
        self.alerts: list[tuple[str, str]] = []  # (kind, text), in the order they came
        self.texts: list[str] = []  # markdown, captions and plain text, in the order they came
        self.charts = 0  # plotly charts received
        self.fragments: dict[str, float] = {}  # fragment id -> auto-rerun interval
        self.runs_finished = 0
        self.page_hash = ""  # the browser echoes the page it is on with every rerun
        self.page_name = page_name  # the URL path a browser would be on ("lab" for /lab)
        self.run_id: str | None = None  # the last `run` the page put in the address bar
        self._ws = None

    async def __aenter__(self) -> "StreamlitClient":
        self._ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"],
                                            max_size=64 * 2**20, open_timeout=30)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._ws.close()

    async def rerun(self, trigger: str | None = None, fragment: str = "") -> None:
        msg = BackMsg()
        cs = msg.rerun_script
        # The page goes by name, as a browser on /lab does: the hash in new_session is the
        # entry script's, which st.navigation would resolve to the default page.
        cs.query_string, cs.page_name = self.query, self.page_name
        if trigger is not None:
            w = cs.widget_states.widgets.add()
            w.id, w.trigger_value = self.buttons[trigger], True
        if fragment:
            cs.fragment_id, cs.is_auto_rerun = fragment, True
        await self._ws.send(msg.SerializeToString())

    async def until_script_done(self, timeout: float) -> None:
        """Read messages until the script run (or fragment run) that was asked for ends."""
        polls: dict[str, float] = {}
        while True:
            fm = ForwardMsg()
            fm.ParseFromString(await asyncio.wait_for(self._ws.recv(), timeout))
            kind = fm.WhichOneof("type")
            if kind == "new_session":  # also sent before fragment runs
                self.page_hash = fm.new_session.page_script_hash
                polls: dict[str, float] = {}
            elif kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                el = fm.delta.new_element
                if el.WhichOneof("type") == "button":
                    self.buttons[el.button.label] = el.button.id
                elif el.WhichOneof("type") == "alert":
                    self.alerts.append((ALERT.get(el.alert.format, "?"), el.alert.body))
                elif el.WhichOneof("type") == "markdown":
                    self.texts.append(el.markdown.body)
                elif el.WhichOneof("type") == "plotly_chart":
                    self.charts += 1
            elif kind == "auto_rerun":
                polls[fm.auto_rerun.fragment_id] = fm.auto_rerun.interval
            elif kind == "page_info_changed":
                self.query = fm.page_info_changed.query_string
                self.run_id = self.param("run") or self.run_id
            elif kind == "script_finished" and fm.script_finished != \
                    ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                if fm.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                    self.fragments = polls  # a full run says anew which fragments poll
                self.runs_finished += 1
                return

    def param(self, name: str) -> str | None:
        return (parse_qs(self.query).get(name) or [None])[-1]

    async def poll_until(self, done, timeout: float) -> None:
        """Auto-rerun the page's fragments as a browser would until `done()` or timeout."""
        deadline = time.time() + timeout
        while not done():
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("the page never showed an ending")
            if not self.fragments:
                await self.until_script_done(left)  # e.g. the full rerun a fragment asked for
                continue
            fid, every = next(iter(self.fragments.items()))
            await asyncio.sleep(every)
            await self.rerun(fragment=fid)
            await self.until_script_done(left)
