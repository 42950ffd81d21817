// Verifies a sessionkit session JWT as another Node.js service would: with
// the jose library and the key set `sessionkit keys export` writes.
//
//   node verify.mjs JWKS_FILE TOKEN
//
// Prints the subject (the user) and exits 0 when the token verifies, with
// its algorithm pinned to the key's, issuer and audience "sessionkit" and
// typ "session+jwt"; prints the error and exits 1 otherwise.
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, decodeProtectedHeader, importJWK, jwtVerify } from 'jose';

const [jwksFile, token] = process.argv.slice(2);
const jwks = JSON.parse(readFileSync(jwksFile, 'utf8'));
const options = { issuer: 'sessionkit', audience: 'sessionkit', typ: 'session+jwt' };

try {
  const { alg, kid } = decodeProtectedHeader(token);
  // The algorithms are pinned by the verifier, never taken from the token:
  // the public ones with the key set, HS256 only with its secret.
  let key, algorithms;
  if (alg === 'HS256') {
    // jose's key sets hold public keys only; an HS256 secret is imported
    // from its symmetric JWK.
    const jwk = jwks.keys.find((k) => k.kid === kid && k.kty === 'oct');
    if (!jwk) throw new Error(`no HS256 secret with kid ${kid} in ${jwksFile}`);
    key = await importJWK(jwk, 'HS256');
    algorithms = ['HS256'];
  } else {
    key = createLocalJWKSet(jwks);
    algorithms = ['EdDSA', 'ES256'];
  }
  const { payload } = await jwtVerify(token, key, { ...options, algorithms });
  console.log(`ok ${alg} sub=${payload.sub}`);
} catch (err) {
  console.log(`refused: ${err.code ?? ''} ${err.message}`);
  process.exit(1);
}
