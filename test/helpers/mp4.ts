import { createFile, MP4BoxBuffer, type Movie } from 'mp4box';

export interface Mp4Summary {
  /** The movie's duration (mvhd), in seconds. */
  seconds: number;
  videoTracks: { codec: string; width: number; height: number; frames: number; frameSeconds: number }[];
}

/** Reads an MP4 with GPAC's parser (mp4box), independently of how the file was made. */
export function readMp4(file: Buffer): Mp4Summary {
  const bytes = new ArrayBuffer(file.byteLength);
  new Uint8Array(bytes).set(file);
  const mp4 = createFile();
  let movie: Movie | undefined;
  let failure: string | undefined;
  mp4.onReady = (info) => (movie = info);
  mp4.onError = (module, message) => (failure = `${module}: ${message}`);
  mp4.appendBuffer(MP4BoxBuffer.fromArrayBuffer(bytes, 0));
  mp4.flush();
  if (!movie) throw new Error(`not a complete MP4${failure ? ` (${failure})` : ''}`);
  return {
    seconds: movie.duration / movie.timescale,
    videoTracks: movie.videoTracks.map((track) => ({
      codec: track.codec,
      width: track.track_width,
      height: track.track_height,
      frames: track.nb_samples,
      frameSeconds: track.samples_duration / track.nb_samples / track.timescale,
    })),
  };
}
