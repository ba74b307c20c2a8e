"""The search page in a real headless Chromium: type a query, see all three columns fill."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from densa.corpus import read_corpus
from densa.demo import sample_dataset_path
from densa.encode import SentenceTransformerEncoder
from densa.index import Index
from tests.serve.conftest import ROOT, server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
ARTIFACTS = ROOT / "test-artifacts"

if not (CHROMIUM and DRIVER) and os.environ.get("DENSA_REQUIRE_BROWSER"):
    raise RuntimeError("DENSA_REQUIRE_BROWSER is set but chromium / chromedriver are missing")


@pytest.mark.slow
@pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver")
def test_page_shows_bm25_dense_and_hybrid_side_by_side(
    tmp_path: Path, minilm: SentenceTransformerEncoder
) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    path = tmp_path / "sample-index"
    Index.build(read_corpus(sample_dataset_path() / "corpus.jsonl"), path, encoder=minilm)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(flag)
    with server(path, hashing=False) as (_, url):
        driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
        try:
            driver.get(url + "/")
            box = driver.find_element(By.ID, "query")
            box.send_keys("heart attack")
            driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
            wait = WebDriverWait(driver, 60)
            for mode in ("bm25", "dense", "hybrid"):
                wait.until(
                    expected_conditions.presence_of_element_located(
                        (By.CSS_SELECTOR, f'.column[data-mode="{mode}"] .hit')
                    )
                )
            titles = {
                mode: [
                    e.text
                    for e in driver.find_elements(By.CSS_SELECTOR, f'.column[data-mode="{mode}"] .hit .title')
                ]
                for mode in ("bm25", "dense", "hybrid")
            }
            assert all(titles.values())
            assert titles["dense"][0] == "Myocardial infarction"  # found by meaning
            assert "Myocardial infarction" not in titles["bm25"]  # keyword search misses it
            assert driver.find_elements(
                By.CSS_SELECTOR, '.column[data-mode="bm25"] mark'
            )  # query words highlighted
            assert driver.find_elements(By.CSS_SELECTOR, '.column[data-mode="dense"] .badge')
            ARTIFACTS.mkdir(exist_ok=True)
            assert driver.save_screenshot(str(ARTIFACTS / "search-page.png"))
        finally:
            driver.quit()
