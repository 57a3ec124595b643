"""Every trained token was sampled (issue 29, item 2): what a backend's sessions returned, recorded beside a
rollout, against what training would put a loss on.

`Recorder(backend)` keeps every attempt the backend's sessions hand back (`Session.step`), as the engine sampled
it; `assert_trained_tokens_were_sampled` then checks the transcripts through `train.pad`, the function that
builds the policy-loss mask and the behaviour log-probs: the tokens with loss weight are exactly the sampled
ones, attempt by attempt, with the log-probs they were sampled with; each attempt ends on the token that ended
it (end of turn or EOS, the token closing its first box, or its budget's last); and a turn the policy ended with
another EOS is closed by the feedback's own end-of-turn marker, which carries no loss weight.
"""

from __future__ import annotations

import torch

from pipeline import train
from pipeline.dialogue import Role
from pipeline.grading.extract import first_box_end
from pipeline.rollout import Sampled


class Recorder:
    """Within `with Recorder(backend) as recorder:`, each session the backend opens keeps the attempts it returns,
    per row (`backend.open` wrapped; put back on exit)."""

    def __init__(self, backend):
        self.backend = backend
        self.sessions: list[dict[int, list[Sampled]]] = []

    def __enter__(self) -> Recorder:
        open_session = self.backend.open

        def recording_open(n_rows, params, streams=None):
            session = open_session(n_rows, params, streams)
            sampled: dict[int, list[Sampled]] = {r: [] for r in range(n_rows)}
            self.sessions.append(sampled)
            step = session.step

            def recording_step():
                ended = step()
                for row, s in ended:
                    sampled[row].append(s)
                return ended

            session.step = recording_step
            return session

        self.backend.open = recording_open
        return self

    def __exit__(self, *exc) -> None:
        del self.backend.open  # the class's own again

    def attempts(self) -> list[list[Sampled]]:
        """The attempts of each dialogue, in the rollout's order (sessions cover consecutive questions)."""
        return [attempts for sampled in self.sessions for _, attempts in sorted(sampled.items())]


def assert_trained_tokens_were_sampled(transcripts, recorder: Recorder, tokenizer, end_ids, turn_end: int) -> dict:
    """The checks of the module docstring; returns how the attempts ended (so a test can see all kinds occur)."""
    attempts = recorder.attempts()
    assert len(attempts) == len(transcripts)
    _, _, mask, logp = train.pad(transcripts, tokenizer.pad_token_id)
    reasons: dict[str, int] = {}
    for b, (t, sampled) in enumerate(zip(transcripts, attempts)):
        weighted = [j + 1 for j in range(mask.shape[1]) if mask[b, j]]  # token j + 1 is predicted at position j
        assert [t.token_ids[j] for j in weighted] == [i for s in sampled for i in s.ids], t.dialogue.id
        sampled_logp = torch.tensor([lp for s in sampled for lp in s.logprobs], dtype=logp.dtype)
        assert torch.equal(logp[b, [j - 1 for j in weighted]], sampled_logp), t.dialogue.id
        assert len(sampled) == len(t.dialogue.attempts)
        for s, attempt in zip(sampled, t.dialogue.attempts):
            reasons[s.reason] = reasons.get(s.reason, 0) + 1
            if s.reason == "eot":
                assert s.ids[-1] in end_ids
            elif s.reason == "box":  # the box closes on the last token, not before
                text = tokenizer.decode(s.ids)
                assert first_box_end(text) is not None and first_box_end(tokenizer.decode(s.ids[:-1])) is None
            else:
                assert s.reason == "budget" and s.ids[-1] not in end_ids
            assert len(s.ids) == attempt.n_tokens
            assert attempt.truncated == (s.reason == "budget")  # what env.reward.truncated applies to
        for j in range(1, len(t.token_ids)):  # an attempt that ended with another EOS: the feedback closes the turn
            if t.roles[j - 1] == Role.POLICY and t.roles[j] != Role.POLICY and t.token_ids[j - 1] in end_ids:
                if t.token_ids[j - 1] != turn_end:
                    assert t.roles[j] == Role.FEEDBACK and t.token_ids[j] == turn_end, t.dialogue.id
    return reasons
