/* Why the JWT verifier (jwt.h) refused a token: the enum alone, for the
 * modules that count refusals by reason without verifying anything. */
#ifndef GW_JWT_REASON_H
#define GW_JWT_REASON_H

/* Why a token was refused. The labels (gw_jwt_reason_label) are the metric
 * labels of the access-control issue; keep them stable. */
enum gw_jwt_reason {
    GW_JWT_OK = 0,
    GW_JWT_BAD_SIGNATURE, /* no candidate key verifies the signature */
    GW_JWT_EXPIRED,       /* now >= exp + leeway */
    GW_JWT_NOT_YET_VALID, /* nbf or iat later than now + leeway */
    GW_JWT_WRONG_AUDIENCE,
    GW_JWT_WRONG_ISSUER,
    GW_JWT_MALFORMED,   /* size, encoding, JSON, types, alg, missing exp */
    GW_JWT_UNKNOWN_KEY, /* kid not configured, or no key of the alg's family */
    GW_JWT_REVOKED,     /* valid, but its user is revoked (POST /api/revoke): the node's check, not the verifier's */
};

#endif
