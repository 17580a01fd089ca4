/**
 * A deadline for one remote step: the step's promise, or the step's own error once the time is up. The work is
 * not cancelled (an ssh command stuck in the host's kernel cannot be); the caller says what that means.
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  try {
    return await Promise.race([work, expired]);
  } finally {
    clearTimeout(timer);
  }
}
