// Heights (canvas pixels) of the pictures the pack adds to its nodes. cli/workflow_layout.py
// reserves the same room in the shipped workflows so nothing overlaps; a test keeps them equal.
export const WEB_WIDGET_HEIGHTS = { MultiTalkSpeakers: 340, MultiTalkAudioEncode: 130 };
