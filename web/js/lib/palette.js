// Speaker colours, as models/audio/palette.py (the timeline rows and the speaker preview use the
// same ones; a test keeps the two lists equal). Speaker k (1-based) is SPEAKER_COLORS[(k-1) % 8].
export const SPEAKER_COLORS = [
  [230, 159, 0], [86, 180, 233], [0, 158, 115], [240, 228, 66],
  [204, 121, 167], [213, 94, 0], [0, 114, 178], [190, 190, 190],
];

export function speakerColor(track, alpha = 1) {
  const [r, g, b] = SPEAKER_COLORS[(track - 1) % SPEAKER_COLORS.length];
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}
