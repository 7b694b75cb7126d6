"""Dubbing and timelines: a source video, prompt and image timelines, masked dubbing.

- timing: seconds <-> 25 fps frames, resampling a source's frames onto the timeline
- source / video_reader: the source video (MULTITALK_SOURCE) from IMAGE batches or files
- shots: shot cuts (PySceneDetect) -> independent segments
- prompts / images: prompt and reference-image timelines
- conditions: what each window is anchored on (keyframe, CLIP, prompt, speaker regions)
- faces / masking / masks: masked dubbing (tracked head regions, latent and pixel blending)
See docs/dubbing.md.
"""
