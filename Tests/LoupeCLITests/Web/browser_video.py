"""Opens a video moment on Loupe's search page in headless Chromium: a text search whose results hold a
video, the moment's card, and the video playing from the moment's best time in the item view. Prints
what the page showed as JSON. Usage: browser_video.py BASE_URL COLLECTION QUERY VIDEO_ID SCREENSHOT_DIR"""
import json
import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

base, collection, query, video_id, shots = sys.argv[1:6]
shots = Path(shots)
shots.mkdir(parents=True, exist_ok=True)

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
             "--autoplay-policy=no-user-gesture-required"]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 30)
shown = {}
try:
    driver.get(f"{base}/?collection={collection}&q={query}")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results li a"))
    shown["results"] = [a.get_attribute("data-id") for a in driver.find_elements(By.CSS_SELECTOR, "#results li a")]
    card = driver.find_element(By.CSS_SELECTOR, f'#results li a[data-id="{video_id}"]')
    shown["moment"] = card.find_element(By.CSS_SELECTOR, ".moment").text
    wait.until(lambda d: d.execute_script(
        "return [...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"))
    driver.save_screenshot(str(shots / "6-video-results.png"))
    card.click()
    wait.until(lambda d: d.find_element(By.ID, "item-video").is_displayed())
    # Playing, from the moment on.
    wait.until(lambda d: d.execute_script(
        "const v = document.getElementById('item-video'); return v.readyState >= 2 && !v.paused && v.currentTime > 0"))
    state = driver.execute_script(
        "const v = document.getElementById('item-video');"
        "return {time: v.currentTime, paused: v.paused, error: v.error && v.error.code, src: v.currentSrc,"
        " image_hidden: document.getElementById('item-image').hidden};")
    shown.update({"video_" + name: value for name, value in state.items()})
    shown["title"] = driver.find_element(By.ID, "item-title").text
    shown["item_url"] = driver.current_url
    driver.save_screenshot(str(shots / "7-video-moment.png"))
    driver.back()
    wait.until(lambda d: d.find_element(By.ID, "results").is_displayed())
    shown["paused_after_back"] = driver.execute_script("return document.getElementById('item-video').paused")
finally:
    driver.quit()
print(json.dumps(shown))
