"""The bucket `forms` and the fields of a presigned POST form for the key
from-a-form.txt that sends the browser back to REDIRECT (tests/browser.rs):
printed as JSON, then `ok`."""
import json
import os

from common import client

s3 = client()
s3.create_bucket(Bucket="forms")
redirect = os.environ["REDIRECT"]
form = s3.generate_presigned_post("forms", "from-a-form.txt", ExpiresIn=600,
                                  Fields={"success_action_redirect": redirect, "Content-Type": "text/plain"},
                                  Conditions=[{"success_action_redirect": redirect}, {"Content-Type": "text/plain"}])
print(json.dumps(form["fields"]))
print("ok")
