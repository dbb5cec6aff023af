"""Drives Loupe's search page in headless Chromium: a text search, a search by uploaded image, an item
with its "more like this" row, back navigation, and a phone-sized view. Saves screenshots and prints
what the page showed as JSON. Usage: browser_e2e.py BASE_URL COLLECTION QUERY IMAGE_PATH SCREENSHOT_DIR [KEY]
With KEY, the server wants a key: the page must ask for it once, then search with it."""
import json
import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

base, collection, query, image, shots = sys.argv[1:6]
key = sys.argv[6] if len(sys.argv) > 6 else None
shots = Path(shots)
shots.mkdir(parents=True, exist_ok=True)

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 30)
shown = {}


def ids(list_id):
    return [a.get_attribute("data-id") for a in driver.find_elements(By.CSS_SELECTOR, f"#{list_id} li a")]


def keyed_run():
    driver.get(f"{base}/?collection={collection}&q={query}")
    wait.until(lambda d: d.find_element(By.ID, "key-dialog").is_displayed())
    driver.save_screenshot(str(shots / "5-key-prompt.png"))
    field = driver.find_element(By.ID, "key")
    field.send_keys(key)
    field.submit()
    wait.until(lambda d: len(ids("results")) > 0)
    shown["text"] = ids("results")
    # Thumbnails are fetched with the key and shown from blob: URLs.
    wait.until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('#results img')].some(i => i.complete && i.naturalWidth > 0)"))
    shown["thumbnail_src"] = driver.find_element(By.CSS_SELECTOR, "#results img").get_attribute("src")
    driver.refresh()  # the key is kept for the tab: no second prompt
    wait.until(lambda d: len(ids("results")) > 0)
    shown["asked_again"] = driver.find_element(By.ID, "key-dialog").is_displayed()


try:
    if key:
        keyed_run()
        driver.quit()
        print(json.dumps(shown))
        sys.exit(0)
    driver.get(f"{base}/?collection={collection}")
    wait.until(ready.text_to_be_present_in_element((By.ID, "status"), "Describe"))
    box = driver.find_element(By.ID, "query")
    box.send_keys(query)
    box.submit()
    wait.until(lambda d: len(ids("results")) > 0)
    shown["text"] = ids("results")
    shown["text_url"] = driver.current_url
    shown["titles"] = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#results .title")]
    shown["alts"] = [e.get_attribute("alt") for e in driver.find_elements(By.CSS_SELECTOR, "#results img")]
    shown["alerts"] = driver.execute_script("return typeof window.__alerted")
    driver.save_screenshot(str(shots / "1-text-search.png"))

    driver.find_element(By.ID, "file").send_keys(str(Path(image).resolve()))
    wait.until(ready.text_to_be_present_in_element((By.ID, "status"), "results like"))
    shown["image"] = ids("results")
    driver.save_screenshot(str(shots / "2-image-search.png"))

    first = driver.find_element(By.CSS_SELECTOR, "#results li a")
    first.send_keys("\n")  # keyboard, not mouse
    wait.until(lambda d: d.find_element(By.ID, "item").is_displayed() and len(ids("similar")) > 0)
    shown["item_title"] = driver.find_element(By.ID, "item-title").text
    shown["item_url"] = driver.current_url
    shown["similar"] = ids("similar")
    shown["metadata"] = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#item-metadata dt")]
    driver.save_screenshot(str(shots / "3-item.png"))

    driver.back()
    wait.until(lambda d: not d.find_element(By.ID, "item").is_displayed())
    shown["back_url"] = driver.current_url

    driver.get(shown["text_url"])  # a linked search loads by itself
    wait.until(lambda d: len(ids("results")) > 0)
    shown["reloaded"] = ids("results")
    driver.set_window_size(390, 844)
    driver.save_screenshot(str(shots / "4-phone.png"))
    shown["page_width"] = driver.execute_script("return document.documentElement.scrollWidth")
finally:
    driver.quit()
print(json.dumps(shown))
