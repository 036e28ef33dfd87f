"""Verifies authgate's signed assertion the way an app would, with PyJWT and its JWKS client.

The part between the snippet markers is the README's Python example, word for word (a test
checks). Input on stdin: {"issuer": ..., "checks": [{"jwks": url, "token": ..., "audience":
...}]}; output: one {"ok": true, "claims": {...}} or {"ok": false, "error": "..."} per check.
"""
import json
import sys

# --- snippet: python ---
import jwt  # pip install "pyjwt[crypto]"

def verify(token: str, jwks_url: str, issuer: str, audience: str) -> dict:
    """The claims of a valid assertion; raises jwt.InvalidTokenError otherwise."""
    key = jwt.PyJWKClient(jwks_url).get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        key.key,
        algorithms=["ES256"],  # pinned: never take the algorithm from the token
        audience=audience,     # this app's name for itself (the route's assertion_audience)
        issuer=issuer,         # the gateway's public_url
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
# --- end snippet ---


def main():
    req = json.load(sys.stdin)
    out = []
    for c in req["checks"]:
        try:
            out.append({"ok": True, "claims": verify(c["token"], c["jwks"], req["issuer"], c["audience"])})
        except Exception as e:  # every refusal, whatever its class
            out.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
