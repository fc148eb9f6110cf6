import type { TaskObject } from './api';

/** A card's preview: the first image, or the first video (its first frame; plays while hovered or focused). */
export function Preview({ task }: { task: TaskObject }) {
  const image = task.task_result.images?.[0];
  const video = task.task_result.videos?.[0];
  if (image) return <img class="thumb" src={image.url} alt={`Result of task ${task.task_id}`} loading="lazy" />;
  if (video) {
    const play = (e: Event) => void (e.currentTarget as HTMLVideoElement).play().catch(() => undefined);
    const pause = (e: Event) => (e.currentTarget as HTMLVideoElement).pause();
    return (
      <video
        class="thumb"
        src={`${video.url}#t=0.1`}
        muted
        loop
        playsInline
        preload="metadata"
        aria-label={`Video result of task ${task.task_id}`}
        onMouseEnter={play}
        onMouseLeave={pause}
        onFocus={play}
        onBlur={pause}
      />
    );
  }
  return (
    <div class="thumb empty" aria-hidden="true">
      {task.task_status === 'failed' ? 'no result' : '…'}
    </div>
  );
}
