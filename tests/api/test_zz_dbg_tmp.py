from tests.api.test_plivo_messages import FROM, auth_id  # noqa
def test_dbg(verbal, auth_id):
    with verbal.http() as http:
        r = http.post(f"/v1/Account/{auth_id}/Message/", json={"src": FROM, "dst": "+15550002000<+15550003000", "text": "x", "url": "http://127.0.0.1:9/dlr", "method": "GET"})
        print(r.status_code, r.text)
        r = http.post(f"/v1/Account/{auth_id}/Message/", json={"src": FROM, "dst": "+15550003000", "text": "x"})
        print(r.status_code, r.text)
