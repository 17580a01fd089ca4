/**
 * The image for the run, wherever it comes from: a local tarball (pinned or not), or a URL whose sidecar was
 * read (ts/image-url.ts). And, for a URL, the two ways its tarball reaches the host's tmpfs: the host fetches it
 * (stage.sh's url mode, its arguments built here), or this machine downloads it and it is streamed as a local one.
 */
import { StageError, UsageError } from './errors.js';
import { describeRate, type HostFetch } from './image-fetch.js';
import { downloadImage, loadImageUrl, parseImageSource, type DownloadedImage, type DownloadInProgress } from './image-url.js';
import { loadImage, type Image } from './image.js';

/** Loads --image (with --image-sha256): a path is read and, when pinned, hashed; a URL's sidecar is fetched. */
export async function loadImageSource(image: string, sha256?: string): Promise<Image> {
  const source = parseImageSource(image, sha256);
  if (source.kind === 'url') return loadImageUrl(source);
  const loaded = await loadImage(source.path);
  // loadImage read the whole file once already; its hash is the one to compare with the pin.
  if (source.sha256 && loaded.tarSha256 !== source.sha256) {
    throw new UsageError(
      `image ${loaded.path} has sha256 ${loaded.tarSha256}, not the pinned ${source.sha256}`,
      'Check the file and the hash against where the image is published.',
    );
  }
  return loaded;
}

/** stage.sh's arguments after the usual seven (the 7th is the pinned hash), for the host to fetch the image itself. */
export function hostFetchArgs(image: Image, plan: HostFetch): string[] {
  const url = image.url!;
  return ['url', plan.fetcher, plan.shaTool, url.url, image.sumsSha256, String(image.busybox.offset), String(url.sumsOffset), String(url.sumsBytes)];
}

/** What the operator reads about the host's download, from stage.sh's fetch_cs. */
export function describeHostFetch(image: Image, fetchCs: number | undefined): string {
  const amount = fetchCs === undefined ? `${(image.tarBytes / 1e6).toFixed(1)} MB` : describeRate(image.tarBytes, fetchCs * 10);
  return `the host fetched the image itself: ${amount}, sha256 verified there`;
}

/**
 * This machine downloads a URL image (the host cannot) and returns it as a local image to stream; `onStart` gets
 * the temporary file before its first byte, and the caller removes it when the run ends, however it ends. The
 * tarball must also be the one the sidecar described.
 */
export async function downloadForStreaming(
  image: Image,
  progress: (n: number) => void,
  info: (text: string) => void,
  onStart: (download: DownloadInProgress) => void,
): Promise<{ image: Image; download: DownloadedImage }> {
  const download = await downloadImage(image.url!, image.tarBytes, progress, onStart);
  info(`downloaded ${describeRate(download.bytes, download.ms)}, sha256 verified; streaming it to the host`);
  try {
    const local = await loadImage(download.path);
    if (local.sumsSha256 !== image.sumsSha256 || local.busybox.offset !== image.busybox.offset) {
      throw new StageError(
        `the sidecar of ${image.url!.url} does not describe the tarball it sits next to`,
        'Publish the .tar.meta built with this tarball. Nothing was done on the host.',
      );
    }
    return { image: local, download };
  } catch (e) {
    await download.remove();
    throw e;
  }
}
