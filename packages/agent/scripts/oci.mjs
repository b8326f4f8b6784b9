// Reproducible OCI image archives without a daemon or a registry (issue 16): a single-layer image written as an OCI
// image layout in one tar file, which `ctr images import`, `skopeo copy oci-archive:...` and `podman load` read.
//
// Reproducible means the same files give the same digest: entries are sorted, owners are numeric, and every time
// is the fixed `mtime` (SOURCE_DATE_EPOCH when set, else 0). The tar writer is a few lines of ustar + PAX headers
// because it must set each entry's owner, mode and time from a list, not from the file system, which is what
// reproducibility needs and what the npm `tar` package does not offer for in-memory entries.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

/** The fixed time of every entry and of the image's `created`: SOURCE_DATE_EPOCH (seconds) or 0. */
export const MTIME = Number.parseInt(process.env.SOURCE_DATE_EPOCH ?? '0', 10) || 0;

const BLOCK = 512;

function octal(value, width) {
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** One PAX record: "<len> key=value\n", where len counts the whole record including its own digits. */
function paxRecord(key, value) {
  const body = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(body) + 1;
  while (String(len).length + Buffer.byteLength(body) !== len) len += 1;
  return `${len}${body}`;
}

function header({ name, mode, uid = 0, gid = 0, size = 0, type, linkname = '' }) {
  const buf = Buffer.alloc(BLOCK);
  buf.write(name, 0, 100, 'utf8');
  buf.write(octal(mode & 0o7777, 8), 100, 'ascii');
  buf.write(octal(uid, 8), 108, 'ascii');
  buf.write(octal(gid, 8), 116, 'ascii');
  buf.write(octal(size, 12), 124, 'ascii');
  buf.write(octal(MTIME, 12), 136, 'ascii');
  buf.write('        ', 148, 'ascii');
  buf.write(type, 156, 'ascii');
  buf.write(linkname, 157, 100, 'utf8');
  buf.write('ustar\x0000', 257, 'ascii');
  buf.write(octal(0, 8), 329, 'ascii');
  buf.write(octal(0, 8), 337, 'ascii');
  let sum = 0;
  for (const byte of buf) sum += byte;
  buf.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return buf;
}

const padding = (size) => Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);

/** Headers for one entry: a PAX header first when a name does not fit ustar's 100 bytes. */
function headers(entry) {
  const long = Buffer.byteLength(entry.name) > 99 || Buffer.byteLength(entry.linkname ?? '') > 99;
  if (!long) return [header(entry)];
  const records = Buffer.from(
    paxRecord('path', entry.name) + (entry.linkname ? paxRecord('linkpath', entry.linkname) : ''),
  );
  return [
    header({ name: 'PaxHeader', mode: 0o644, size: records.length, type: 'x' }),
    records,
    padding(records.length),
    header({ ...entry, name: entry.name.slice(0, 99), linkname: (entry.linkname ?? '').slice(0, 99) }),
  ];
}

/**
 * A tar stream of `entries`, sorted by name. Each entry: `{ name, mode, uid?, gid? }` plus `dir: true`,
 * `symlink: target`, `source: path` (a file's contents, streamed) or `data: Buffer`.
 */
export function tarStream(entries) {
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].name === sorted[i - 1].name) throw new Error(`two tar entries named ${sorted[i].name}`);
  }
  return Readable.from(
    (async function* () {
      for (const entry of sorted) {
        if (entry.dir) {
          yield* headers({ ...entry, name: `${entry.name}/`, type: '5' });
        } else if (entry.symlink !== undefined) {
          yield* headers({ ...entry, type: '2', linkname: entry.symlink });
        } else if (entry.data !== undefined) {
          yield* headers({ ...entry, type: '0', size: entry.data.length });
          yield entry.data;
          yield padding(entry.data.length);
        } else {
          const { size } = statSync(entry.source);
          yield* headers({ ...entry, type: '0', size });
          let read = 0;
          for await (const chunk of createReadStream(entry.source)) {
            read += chunk.length;
            yield chunk;
          }
          if (read !== size) throw new Error(`${entry.source} changed while it was archived`);
          yield padding(size);
        }
      }
      yield Buffer.alloc(BLOCK * 2);
    })(),
    { objectMode: false },
  );
}

/** A pass-through that hashes (sha256) and counts what flows through it. */
function digester() {
  const hash = createHash('sha256');
  let size = 0;
  const stream = new Transform({
    transform(chunk, _encoding, callback) {
      hash.update(chunk);
      size += chunk.length;
      callback(null, chunk);
    },
  });
  return { stream, result: () => ({ digest: `sha256:${hash.digest('hex')}`, size }) };
}

const json = (value) => Buffer.from(JSON.stringify(value));
const blob = (data) => ({
  data,
  digest: `sha256:${createHash('sha256').update(data).digest('hex')}`,
  size: data.length,
});

/**
 * Writes a one-layer OCI image archive to `out` (via a temporary file, renamed at the end).
 *
 * @param {object} options
 * @param {string} options.out the archive's path
 * @param {object[]} options.files the layer's entries (see tarStream)
 * @param {object} options.config the image config's `config` (User, Env, Entrypoint, Cmd, WorkingDir, Labels)
 * @param {string[]} options.names image names for containerd (`io.containerd.image.name`), e.g. localhost/x:1
 * @param {string} [options.architecture] OCI architecture (amd64, arm64); default the host's
 * @returns {Promise<{ path: string, size: number, digest: string }>} digest: the manifest's, what a registry shows
 */
export async function writeOciArchive({ out, files, config, names, architecture = ociArch(process.arch) }) {
  const layerPath = `${out}.layer.tmp`;
  const diff = digester();
  const compressed = digester();
  await pipeline(
    tarStream(files),
    diff.stream,
    createGzip({ level: 9 }),
    compressed.stream,
    createWriteStream(layerPath),
  );
  const layer = compressed.result();
  const created = new Date(MTIME * 1000).toISOString();
  const imageConfig = blob(
    json({
      created,
      architecture,
      os: 'linux',
      config,
      rootfs: { type: 'layers', diff_ids: [diff.result().digest] },
      history: [{ created, created_by: 'phasekit scripts/build-image.mjs' }],
    }),
  );
  const manifest = blob(
    json({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: imageConfig.digest,
        size: imageConfig.size,
      },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer.digest, size: layer.size },
      ],
      annotations: config.Labels ?? {},
    }),
  );
  const index = json({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: names.map((name) => ({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: manifest.digest,
      size: manifest.size,
      platform: { architecture, os: 'linux' },
      annotations: {
        'io.containerd.image.name': name,
        'org.opencontainers.image.ref.name': name.slice(name.lastIndexOf(':') + 1),
      },
    })),
  });
  const hex = (digest) => digest.slice('sha256:'.length);
  const dir = (name) => ({ name, dir: true, mode: 0o755 });
  const tmp = `${out}.tmp`;
  try {
    await pipeline(
      tarStream([
        { name: 'oci-layout', mode: 0o644, data: json({ imageLayoutVersion: '1.0.0' }) },
        { name: 'index.json', mode: 0o644, data: index },
        dir('blobs'),
        dir('blobs/sha256'),
        { name: `blobs/sha256/${hex(layer.digest)}`, mode: 0o644, source: layerPath },
        { name: `blobs/sha256/${hex(imageConfig.digest)}`, mode: 0o644, data: imageConfig.data },
        { name: `blobs/sha256/${hex(manifest.digest)}`, mode: 0o644, data: manifest.data },
      ]),
      createWriteStream(tmp),
    );
    await rename(tmp, out);
  } finally {
    await rm(layerPath, { force: true });
    await rm(tmp, { force: true });
  }
  return { path: out, size: statSync(out).size, digest: manifest.digest };
}

/** Node's process.arch as OCI names it. */
export function ociArch(arch) {
  const known = { x64: 'amd64', arm64: 'arm64' };
  if (!(arch in known)) throw new Error(`no image for the ${arch} architecture (amd64 and arm64 only)`);
  return known[arch];
}

/**
 * The entries of an uncompressed tar (tests and the image's own check): `{ name, type, mode, uid, gid, linkname,
 * data }`, with PAX paths applied.
 */
export function* tarEntries(buf) {
  let pax = {};
  for (let at = 0; at + BLOCK <= buf.length;) {
    const field = (start, len) => buf.toString('utf8', at + start, at + start + len).replace(/\0.*$/s, '');
    const name = field(0, 100);
    if (name === '') return;
    const size = Number.parseInt(field(124, 12), 8);
    const type = field(156, 1);
    const data = buf.subarray(at + BLOCK, at + BLOCK + size);
    const meta = {
      mode: Number.parseInt(field(100, 8), 8),
      uid: Number.parseInt(field(108, 8), 8),
      gid: Number.parseInt(field(116, 8), 8),
      linkname: field(157, 100),
    };
    at += BLOCK + size + ((BLOCK - (size % BLOCK)) % BLOCK);
    if (type === 'x') {
      pax = {};
      for (const record of data.toString('utf8').split('\n')) {
        const match = /^\d+ ([^=]+)=(.*)$/s.exec(record);
        if (match) pax[match[1]] = match[2];
      }
      continue;
    }
    yield {
      name: pax.path ?? name,
      type,
      ...meta,
      linkname: pax.linkpath ?? meta.linkname,
      data,
    };
    pax = {};
  }
}
