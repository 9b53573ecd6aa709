// Container images without Docker or a registry: a root file system directory becomes one layer,
// written with its config as a docker-archive tarball (the layout `docker save` writes), which
// `ctr images import` reads. The lab makes two: `pause` (a static binary of ../../assets/pause.c)
// and `busybox` (Debian's busybox-static with a link per applet) for test pods.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LabError, LabErrorCode } from '../errors.js';
import { run } from '../sh.js';

export interface ImageSpec {
  /** Reference, e.g. `podnet.local/pause:lab`. */
  ref: string;
  rootfs: string;
  entrypoint?: string[];
  cmd?: string[];
}

const sha256 = (buf: Buffer | string) => createHash('sha256').update(buf).digest('hex');

/** `tar -cf out -C dir members…`, reproducible: sorted names, owner root, no timestamps. */
const reproducibleTar = (dir: string, out: string, members: readonly string[]) =>
  run('tar', [
    '--sort=name',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--mtime=@0',
    '-C',
    dir,
    '-cf',
    out,
    ...members,
  ]);

/** Writes `out` (a docker-archive tarball) from `spec`; returns the image's config digest. */
export async function dockerArchive(spec: ImageSpec, work: string, out: string): Promise<string> {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const layerTar = join(work, 'layer.tar');
  await reproducibleTar(spec.rootfs, layerTar, ['.']);
  const diffId = sha256(readFileSync(layerTar));
  mkdirSync(join(work, diffId));
  copyFileSync(layerTar, join(work, diffId, 'layer.tar'));
  rmSync(layerTar);
  const config = JSON.stringify({
    architecture: 'amd64',
    os: 'linux',
    created: '1970-01-01T00:00:00Z',
    config: {
      ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
      ...(spec.cmd ? { Cmd: spec.cmd } : {}),
      Env: ['PATH=/bin'],
    },
    rootfs: { type: 'layers', diff_ids: [`sha256:${diffId}`] },
    history: [
      { created: '1970-01-01T00:00:00Z', created_by: 'podnet lab (packages/lab/src/cluster/images.ts)' },
    ],
  });
  const configDigest = sha256(config);
  writeFileSync(join(work, `${configDigest}.json`), config);
  writeFileSync(
    join(work, 'manifest.json'),
    JSON.stringify([
      { Config: `${configDigest}.json`, RepoTags: [spec.ref], Layers: [`${diffId}/layer.tar`] },
    ]),
  );
  await reproducibleTar(work, out, ['manifest.json', `${configDigest}.json`, diffId]);
  rmSync(work, { recursive: true, force: true });
  return configDigest;
}

export const PAUSE_IMAGE = 'podnet.local/pause:lab';
export const BUSYBOX_IMAGE = 'podnet.local/busybox:lab';

/** Builds the pause and busybox images into `dir`; returns the tarballs. */
export async function labImages(repoRoot: string, dir: string): Promise<{ ref: string; tar: string }[]> {
  mkdirSync(dir, { recursive: true });
  // pause: one static binary.
  const pauseRoot = join(dir, 'pause-root');
  rmSync(pauseRoot, { recursive: true, force: true });
  mkdirSync(pauseRoot, { recursive: true });
  const src = join(repoRoot, 'packages', 'lab', 'assets', 'pause.c');
  await run('gcc', ['-Os', '-static', '-o', join(pauseRoot, 'pause'), src]).catch((err: Error) => {
    throw new LabError(
      LabErrorCode.missingTool,
      `building the pause image: gcc -static ${src} failed (Debian packages gcc, libc6-dev): ${err.message}`,
    );
  });
  // busybox: the static binary and a link per applet.
  const bbRoot = join(dir, 'busybox-root');
  rmSync(bbRoot, { recursive: true, force: true });
  for (const d of ['bin', 'tmp', 'etc', 'proc', 'sys', 'dev'])
    mkdirSync(join(bbRoot, d), { recursive: true });
  copyFileSync('/bin/busybox', join(bbRoot, 'bin', 'busybox'));
  const applets = (await run('/bin/busybox', ['--list'])).split('\n').filter((a) => /^[\w.[-]+$/.test(a));
  for (const a of applets) if (a !== 'busybox') symlinkSync('busybox', join(bbRoot, 'bin', a));
  writeFileSync(
    join(bbRoot, 'etc', 'passwd'),
    'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n',
  );
  writeFileSync(join(bbRoot, 'etc', 'group'), 'root:x:0:\nnobody:x:65534:\n');
  const out: { ref: string; tar: string }[] = [];
  for (const spec of [
    { ref: PAUSE_IMAGE, rootfs: pauseRoot, entrypoint: ['/pause'] },
    { ref: BUSYBOX_IMAGE, rootfs: bbRoot, cmd: ['sh'] },
  ]) {
    const tar = join(dir, `${spec.ref.split('/').pop()?.replace(':', '-')}.tar`);
    await dockerArchive(spec, join(dir, 'work'), tar);
    out.push({ ref: spec.ref, tar });
  }
  return out;
}
