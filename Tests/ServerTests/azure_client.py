"""A client written the way Azure AI Vision's documentation writes one: requests.post with the
subscription-key header, a binary image body, then a JSON text body. Prints the vectors and their
cosine similarity as JSON. Usage: azure_client.py ENDPOINT KEY IMAGE TEXT"""
import json
import math
import sys

import requests

endpoint, key, image_path, text = sys.argv[1:5]
params = {"api-version": "2024-02-01", "model-version": "2023-04-15"}

with open(image_path, "rb") as image:
    response = requests.post(
        f"{endpoint}/computervision/retrieval:vectorizeImage",
        params=params,
        headers={"Ocp-Apim-Subscription-Key": key, "Content-Type": "application/octet-stream"},
        data=image.read(),
        timeout=30,
    )
response.raise_for_status()
image_vector = response.json()["vector"]

response = requests.post(
    f"{endpoint}/computervision/retrieval:vectorizeText",
    params=params,
    headers={"Ocp-Apim-Subscription-Key": key, "Content-Type": "application/json"},
    json={"text": text},
    timeout=30,
)
response.raise_for_status()
text_vector = response.json()["vector"]

dot = sum(a * b for a, b in zip(image_vector, text_vector))
norm = math.sqrt(sum(a * a for a in image_vector)) * math.sqrt(sum(b * b for b in text_vector))
print(json.dumps({"cosine": dot / norm, "image": image_vector, "text": text_vector}))
