"""The dashboard's server parses Python in many threads at once; CPython 3.11's ast module is
not safe for that (bnviz.dashboard.nav.serialise_ast_parse). These tests check the lock that
makes it so, the way the server uses it."""
import ast
import threading
import time

import numpy as np

from bnviz.dashboard import nav


def test_a_parse_waits_for_another_threads_parse_and_literal_eval_is_covered(tmp_path):
    nav.serialise_ast_parse()
    nav.serialise_ast_parse()  # idempotent: one wrapper, not a wrapper of a wrapper
    assert ast.parse is nav._serialised and nav._parse is not nav._serialised
    np.save(tmp_path / "a.npy", np.arange(3.0))
    done = {}

    def parse_in_thread(name, fn):
        fn()
        done[name] = time.perf_counter()

    with nav._ast_lock:  # another thread is inside ast.parse
        held = time.perf_counter()
        threads = [threading.Thread(target=parse_in_thread, args=a) for a in (
            ("parse", lambda: ast.parse("x = 1")),
            ("literal_eval", lambda: ast.literal_eval("{'shape': (3,)}")),
            ("np.load", lambda: np.load(tmp_path / "a.npy")))]  # its header: literal_eval
        for t in threads:
            t.start()
        time.sleep(0.3)
        assert done == {}, "a parse ran while another thread held the parser"
        released = time.perf_counter()
    for t in threads:
        t.join(5)
    assert set(done) == {"parse", "literal_eval", "np.load"}
    assert all(t >= released > held for t in done.values())
    assert ast.literal_eval("(1, 2)") == (1, 2)  # and the wrapped parse still parses


def test_the_server_serialises_parsing_before_its_warm_up_thread_starts(monkeypatch):
    started = []
    monkeypatch.setattr(nav, "_warm_started", False)
    monkeypatch.setattr(nav.threading, "Thread", lambda **kw: started.append(
        ast.parse is nav._serialised) or type("T", (), {"start": lambda self: None})())
    monkeypatch.setattr(ast, "parse", nav._parse or ast.parse)  # as a fresh process has it
    nav.warm_server()
    assert started == [True]
