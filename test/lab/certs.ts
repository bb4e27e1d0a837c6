// Throwaway X.509 certificates for tests (openssl, EC P-256, valid 2 days):
// a self-signed CA and the leaves it signs, as files in one folder.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

export interface CertFiles {
  /** PEM certificate */
  cert: string;
  /** PEM private key, unencrypted */
  key: string;
}

/** A self-signed CA: `<dir>/<name>.pem` and `<dir>/<name>.key`. */
export function makeCa(dir: string, name: string, cn: string): CertFiles {
  openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', `${name}.key`, '-out', `${name}.pem`);
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}

/**
 * A leaf signed by `ca`: `<dir>/<name>.pem` and `<dir>/<name>.key`; `ext`
 * adds extension lines (extendedKeyUsage, subjectAltName).
 */
export function makeLeaf(dir: string, ca: CertFiles, name: string, cn: string, ext: string): CertFiles {
  writeFileSync(join(dir, `${name}.ext`), `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n${ext}\n`);
  openssl(dir, 'req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${cn}`,
    '-keyout', `${name}.key`, '-out', `${name}.csr`);
  openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '2',
    '-extfile', `${name}.ext`, '-out', `${name}.pem`);
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}
