// keygen.mjs: a fresh signing key pair for a private_key_jwt client, made with jose.
//
// RUN: node keygen.mjs <alg> <kid>       alg: RS256 | PS256 | ES256
// OUTPUT: one JSON line {"private_jwk": {...}, "public_jwk": {...}, "private_pem": "PKCS#8 PEM"}
//   Both JWKs carry kid, alg and use "sig".
import * as jose from 'jose';

const [alg, kid] = process.argv.slice(2);
if (!['RS256', 'PS256', 'ES256'].includes(alg) || !kid) {
  process.stderr.write('usage: node keygen.mjs RS256|PS256|ES256 KID\n');
  process.exit(2);
}
const { privateKey, publicKey } = await jose.generateKeyPair(alg, { extractable: true });
const meta = { kid, alg, use: 'sig' };
process.stdout.write(`${JSON.stringify({
  private_jwk: { ...(await jose.exportJWK(privateKey)), ...meta },
  public_jwk: { ...(await jose.exportJWK(publicKey)), ...meta },
  private_pem: await jose.exportPKCS8(privateKey),
})}\n`);
