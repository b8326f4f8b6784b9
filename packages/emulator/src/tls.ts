/** A throwaway certificate for `--tls`: self-signed, for localhost, the loopback addresses and any `hosts`, valid 30 days. */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** Options of generateCertificate. */
export interface GenerateCertificateOptions {
  /**
   * More names the certificate is valid for, besides localhost and the loopback addresses: IP addresses or DNS
   * names, e.g. the address pods use to reach an emulator on a test node.
   */
  readonly hosts?: readonly string[];
}

/** A PEM certificate and its private key. */
export interface TlsCredentials {
  readonly cert: string;
  readonly key: string;
}

/**
 * Generates a P-256 key and a self-signed certificate with the `openssl` command (Node can parse certificates but not
 * issue them). The certificate is its own CA: clients trust it through NODE_EXTRA_CA_CERTS or a dispatcher's `ca`.
 */
export async function generateCertificate(options: GenerateCertificateOptions = {}): Promise<TlsCredentials> {
  const extra = (options.hosts ?? []).map((host) => (isIP(host) ? `IP:${host}` : `DNS:${host}`));
  const dir = await mkdtemp(join(tmpdir(), 'phasekit-emulator-tls-'));
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    await promisify(execFile)('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '30',
      '-subj',
      '/CN=phasekit-emulator',
      '-addext',
      ['subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1', ...extra].join(','),
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-keyout',
      key,
      '-out',
      cert,
    ]).catch((error: unknown) => {
      throw new Error(
        `cannot generate a TLS certificate: the openssl command failed or is missing (${error instanceof Error ? error.message.split('\n')[0] : String(error)})`,
        { cause: error },
      );
    });
    return { cert: await readFile(cert, 'utf8'), key: await readFile(key, 'utf8') };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
