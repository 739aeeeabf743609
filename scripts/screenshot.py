"""Screenshot a bnviz page in headless Chromium: python scripts/screenshot.py URL OUT.png [WAIT_S] [CLICK_TEXT]"""
import sys

from playwright.sync_api import sync_playwright

sys.path.insert(0, ".")
from tests.server import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

url, out = sys.argv[1], sys.argv[2]
wait = float(sys.argv[3]) if len(sys.argv) > 3 else 3
with sync_playwright() as p:
    b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = b.new_page(viewport={"width": 1500, "height": 1400})
    page.goto(url)
    page.wait_for_timeout(3000)
    for text in sys.argv[4:]:
        page.get_by_role("button", name=text).first.click()
        page.wait_for_timeout(1000)
    page.wait_for_timeout(wait * 1000)
    page.screenshot(path=out, full_page=True)
    b.close()
