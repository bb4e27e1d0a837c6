// A native TLS migration's failure names TLS and where to look; other failures pass as they are.
import { describe, expect, it } from 'vitest';
import { VirErrorCode } from '../../src/libvirt/types.js';
import { namedTlsFailure } from '../../src/source/transfer.js';
import { virError } from './fakes/libvirt.js';

describe('namedTlsFailure', () => {
  it("names TLS and the certificates for GnuTLS's words, keeping the error and its code", () => {
    const err = virError(VirErrorCode.OPERATION_FAILED, "operation failed: job 'migration out' failed: The certificate hasn't got a known issuer");
    const named = namedTlsFailure(err, 'tcp://10.0.0.2');
    expect(named).toBe(err);
    expect((named as Error).message).toBe(
      "native TLS migration to tcp://10.0.0.2 failed (live_migration_with_native_tls; check both hosts' certificates in qemu.conf migrate_tls_x509_cert_dir): operation failed: job 'migration out' failed: The certificate hasn't got a known issuer",
    );
    expect((named as { code?: number }).code).toBe(VirErrorCode.OPERATION_FAILED);
  });
  it.each(["operation aborted: job 'migration out' canceled by client", 'unable to connect to server at 10.0.0.2:49152: Connection refused'])('leaves %j alone', (message) => {
    const err = virError(VirErrorCode.OPERATION_FAILED, message);
    expect((namedTlsFailure(err, 'tcp://10.0.0.2') as Error).message).toBe(message);
  });
});
