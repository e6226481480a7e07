#!/usr/bin/env python3
"""Mints the JWT test vectors for test_jwt.c with PyJWT and cryptography, so
the tokens come from an implementation independent of the verifier under
test. Keys are generated fresh on every run; nothing secret is committed.

    gen_jwt_vectors.py OUT.h   write the C header test_jwt.c includes
"""
import base64
import hashlib
import hmac
import json
import os
import sys

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

NOW = 1700000000
ISS = "https://issuer.test"
AUD = "wsgate"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pub_pem(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def claims(**over):
    c = {"sub": "alice", "exp": NOW + 3600, "iat": NOW - 10, "iss": ISS, "aud": AUD,
         "channels": ["room:*", "user:{sub}"], "publish": ["room:1"]}
    for k, v in over.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return c


def hs_raw(secret, header, payload, digest=hashlib.sha256):
    """HS* over hand-written header/payload bytes (PyJWT refuses some of these)."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    p = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing = b64(h) + "." + b64(p)
    return signing + "." + b64(hmac.new(secret, signing.encode(), digest).digest())


def c_str(s):
    if isinstance(s, str):
        s = s.encode()
    out = []
    for byte in s:
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif 0x20 <= byte < 0x7f and ch != "?":
            out.append(ch)
        else:
            out.append("\\%03o" % byte)
    return '"' + "".join(out) + '"'


def main(out_path):
    secret = os.urandom(48)
    rsa1 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa2 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    ec256 = ec.generate_private_key(ec.SECP256R1())
    ec384 = ec.generate_private_key(ec.SECP384R1())
    k1 = ec.generate_private_key(ec.SECP256K1())
    ed = ed25519.Ed25519PrivateKey.generate()
    rsa1_pem = pub_pem(rsa1)

    cases = []  # (name, token, keyset, reason)

    def case(name, token, want, keyset="KS_ALL"):
        cases.append((name, token, keyset, want))

    enc = jwt.encode
    for alg in ("HS256", "HS384", "HS512"):
        case(alg.lower() + "_valid", enc(claims(), secret, algorithm=alg), "GW_JWT_OK")
    for alg in ("RS256", "RS384", "RS512"):
        case(alg.lower() + "_valid", enc(claims(), rsa1, algorithm=alg, headers={"kid": "rsa1"}),
             "GW_JWT_OK")
    case("es256_valid", enc(claims(), ec256, algorithm="ES256", headers={"kid": "ec256"}), "GW_JWT_OK")
    case("es384_valid", enc(claims(), ec384, algorithm="ES384", headers={"kid": "ec384"}), "GW_JWT_OK")
    case("es256_no_kid", enc(claims(), ec256, algorithm="ES256"), "GW_JWT_OK")
    case("rs256_no_kid_second_key", enc(claims(), rsa2, algorithm="RS256"), "GW_JWT_OK")
    case("rotation_kid_rsa2", enc(claims(), rsa2, algorithm="RS256", headers={"kid": "rsa2"}), "GW_JWT_OK")
    case("rotation_wrong_kid", enc(claims(), rsa2, algorithm="RS256", headers={"kid": "rsa1"}),
         "GW_JWT_BAD_SIGNATURE")
    case("unknown_kid", enc(claims(), rsa1, algorithm="RS256", headers={"kid": "nope"}), "GW_JWT_UNKNOWN_KEY")

    case("expired", enc(claims(exp=NOW - 3600), secret), "GW_JWT_EXPIRED")
    case("exp_leeway_edge_out", enc(claims(exp=NOW - 30), secret), "GW_JWT_EXPIRED")
    case("exp_leeway_edge_in", enc(claims(exp=NOW - 29), secret), "GW_JWT_OK")
    case("exp_fraction", enc(claims(exp=NOW + 100.5), secret), "GW_JWT_OK")
    case("nbf_future", enc(claims(nbf=NOW + 600), secret), "GW_JWT_NOT_YET_VALID")
    case("nbf_leeway_edge_in", enc(claims(nbf=NOW + 30), secret), "GW_JWT_OK")
    case("nbf_leeway_edge_out", enc(claims(nbf=NOW + 31), secret), "GW_JWT_NOT_YET_VALID")
    case("iat_future", enc(claims(iat=NOW + 600), secret), "GW_JWT_NOT_YET_VALID")
    case("iat_leeway_edge_in", enc(claims(iat=NOW + 30), secret), "GW_JWT_OK")
    case("wrong_aud", enc(claims(aud="other"), secret), "GW_JWT_WRONG_AUDIENCE")
    case("missing_aud", enc(claims(aud=None), secret), "GW_JWT_WRONG_AUDIENCE")
    case("aud_array", enc(claims(aud=["a", AUD, "b"]), secret), "GW_JWT_OK")
    case("aud_array_without", enc(claims(aud=["a", "b"]), secret), "GW_JWT_WRONG_AUDIENCE")
    case("aud_array_number", hs_raw(secret, {"alg": "HS256"}, claims(aud=[AUD, 7])), "GW_JWT_MALFORMED")
    case("wrong_iss", enc(claims(iss="https://evil.test"), secret), "GW_JWT_WRONG_ISSUER")
    case("missing_iss", enc(claims(iss=None), secret), "GW_JWT_WRONG_ISSUER")

    good = enc(claims(), secret)
    h, p, s = good.split(".")
    evil = b64(json.dumps(claims(sub="admin", channels=["*"])).encode())
    case("tampered_payload", ".".join((h, evil, s)), "GW_JWT_BAD_SIGNATURE")
    case("truncated_sig", good[:-3], "GW_JWT_BAD_SIGNATURE")
    case("truncated_segments", good[:len(h) + 1 + len(p) // 2], "GW_JWT_MALFORMED")
    case("sig_stripped", h + "." + p + ".", "GW_JWT_BAD_SIGNATURE")
    case("sig_removed", h + "." + p, "GW_JWT_MALFORMED")
    case("four_segments", good + ".x", "GW_JWT_MALFORMED")
    # The 43rd character of a 32-byte MAC carries 2 unused bits; set one.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(s[-1]) ^ 1]
    case("sig_noncanonical_bits", ".".join((h, p, s[:-1] + last)), "GW_JWT_MALFORMED")
    case("header_padded", h + "=." + p + "." + s, "GW_JWT_MALFORMED")
    case("garbage_base64", "!!!!.####.$$$$", "GW_JWT_MALFORMED")
    case("empty", "", "GW_JWT_MALFORMED")

    nohdr = b64(json.dumps(claims()).encode())
    for name in ("none", "None", "NONE"):
        hdr = b64(json.dumps({"alg": name, "typ": "JWT"}).encode())
        case("alg_" + name, hdr + "." + nohdr + ".", "GW_JWT_MALFORMED")
    case("alg_missing", hs_raw(secret, {"typ": "JWT"}, claims()), "GW_JWT_MALFORMED")
    case("alg_unknown", hs_raw(secret, {"alg": "HS1"}, claims()), "GW_JWT_MALFORMED")
    case("kid_number", hs_raw(secret, {"alg": "HS256", "kid": 1}, claims()), "GW_JWT_MALFORMED")
    case("kid_on_hmac_token", enc(claims(), secret, headers={"kid": "rsa1"}), "GW_JWT_UNKNOWN_KEY")
    case("crit_header", hs_raw(secret, {"alg": "HS256", "crit": ["exp"]}, claims()), "GW_JWT_MALFORMED")
    case("dup_alg", hs_raw(secret, b'{"alg":"HS256","alg":"none"}', claims()), "GW_JWT_MALFORMED")

    # RFC 8725 3.1: an RSA public key used as an HMAC secret.
    confused = hs_raw(rsa1_pem.encode(), {"alg": "HS256", "typ": "JWT"}, claims())
    case("hs256_with_rsa_pem", confused, "GW_JWT_BAD_SIGNATURE")
    case("hs256_with_rsa_pem_rsa_only", confused, "GW_JWT_UNKNOWN_KEY", "KS_RSA")
    case("hs256_with_rsa_pem_kid", hs_raw(rsa1_pem.encode(), {"alg": "HS256", "kid": "rsa1"}, claims()),
         "GW_JWT_UNKNOWN_KEY")
    case("rs256_against_ec", enc(claims(), rsa1, algorithm="RS256"), "GW_JWT_UNKNOWN_KEY", "KS_EC")
    case("rs256_kid_names_ec", enc(claims(), rsa1, algorithm="RS256", headers={"kid": "ec256"}),
         "GW_JWT_UNKNOWN_KEY")
    case("es256_against_p384", enc(claims(), ec256, algorithm="ES256"), "GW_JWT_UNKNOWN_KEY", "KS_EC384")
    case("es256_kid_names_p384", enc(claims(), ec256, algorithm="ES256", headers={"kid": "ec384"}),
         "GW_JWT_UNKNOWN_KEY")
    eh = b64(json.dumps({"alg": "ES256", "kid": "ec256"}).encode())
    der = ec256.sign((eh + "." + nohdr).encode(), ec.ECDSA(hashes.SHA256()))
    case("es256_der_signature", eh + "." + nohdr + "." + b64(der), "GW_JWT_BAD_SIGNATURE")

    big = claims(channels=["room:%d" % i for i in range(1200)])
    case("oversized", enc(big, secret), "GW_JWT_MALFORMED")
    case("payload_array", hs_raw(secret, {"alg": "HS256"}, b"[1,2,3]"), "GW_JWT_MALFORMED")
    case("payload_not_json", hs_raw(secret, {"alg": "HS256"}, b"{\"exp\":"), "GW_JWT_MALFORMED")
    case("header_array", hs_raw(secret, b'["HS256"]', claims()), "GW_JWT_MALFORMED")
    case("dup_sub", hs_raw(secret, {"alg": "HS256"},
                           b'{"sub":"alice","sub":"admin","exp":%d}' % (NOW + 60)), "GW_JWT_MALFORMED")
    case("exp_string", enc(claims(exp=str(NOW + 3600)), secret), "GW_JWT_MALFORMED")
    case("exp_bool", hs_raw(secret, {"alg": "HS256"}, claims(exp=True)), "GW_JWT_MALFORMED")
    case("exp_missing", enc(claims(exp=None), secret), "GW_JWT_MALFORMED")
    case("exp_huge", hs_raw(secret, {"alg": "HS256"}, claims(exp=2 ** 62)), "GW_JWT_MALFORMED")
    case("nbf_string", hs_raw(secret, {"alg": "HS256"}, claims(nbf="soon")), "GW_JWT_MALFORMED")
    case("channels_string", enc(claims(channels="room:1"), secret), "GW_JWT_MALFORMED")
    case("channels_number_item", enc(claims(channels=["room:1", 2]), secret), "GW_JWT_MALFORMED")
    case("channels_bad_pattern", enc(claims(channels=["room:*:x"]), secret), "GW_JWT_MALFORMED")
    case("channels_null", hs_raw(secret, {"alg": "HS256"}, b'{"exp":%d,"iss":"%s","aud":"%s","channels":null}'
                                 % (NOW + 60, ISS.encode(), AUD.encode())), "GW_JWT_MALFORMED")
    case("publish_object", enc(claims(publish={"a": 1}), secret), "GW_JWT_MALFORMED")
    case("sub_number", enc(claims(sub=42), secret), "GW_JWT_MALFORMED")
    case("iss_number", hs_raw(secret, {"alg": "HS256"}, claims(iss=1)), "GW_JWT_MALFORMED")
    case("no_sub_no_grants", enc(claims(sub=None, channels=None, publish=None), secret), "GW_JWT_OK")

    with open(out_path + ".tmp", "w") as f:
        f.write("/* Generated by gen_jwt_vectors.py at build time; do not edit. */\n")
        f.write("#define JV_NOW %d\n#define JV_ISS %s\n#define JV_AUD %s\n" % (NOW, c_str(ISS), c_str(AUD)))
        f.write("#define JV_HMAC %s\n#define JV_HMAC_LEN %d\n" % (c_str(secret), len(secret)))
        pems = {"RSA1": rsa1_pem, "RSA2": pub_pem(rsa2), "EC256": pub_pem(ec256),
                "EC384": pub_pem(ec384), "RSA1024": pub_pem(rsa_small), "SECP256K1": pub_pem(k1),
                "ED25519": pub_pem(ed),
                "EC256_PRIVATE": ec256.private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()).decode()}
        for name, pem in pems.items():
            f.write("#define JV_%s_PEM %s\n" % (name, c_str(pem)))
        f.write("#define JV_GOOD %s\n" % c_str(good))
        f.write("#define JV_CASES \\\n")
        for name, token, keyset, want in cases:
            f.write("    JV(%s, %s, %s, %s) \\\n" % (c_str(name), c_str(token), keyset, want))
        f.write("\n")
    os.replace(out_path + ".tmp", out_path)


if __name__ == "__main__":
    main(sys.argv[1])
