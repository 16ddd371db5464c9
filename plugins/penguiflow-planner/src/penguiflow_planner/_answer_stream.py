"""Streaming the final answer while the model is still writing its action.

With `ReactPlanner(stream_final_response=True)` the caller sees the text of a `final_response`
as the model produces it, as `llm_stream_chunk` events (PenguiFlow 3.11's shape):

- `{"phase": "answer", "channel": "answer", "text": ..., "done": False, "action_seq": n}`
  for each piece of `args.answer` (or `args.raw_answer`), decoded (escapes resolved);
- `{"phase": "answer", "channel": "answer", "text": "", "done": True, "action_seq": n}` once,
  when the reply was a finish;
- `{"phase": "observation", "channel": "thinking", ...}` for the pieces of `thought`;
- `{"phase": "action", "channel": "thinking", "text": "", "done": False/True, ...}` around
  every model call (`action_started`/`action_finished`; the loop sends them, streaming or not).

What differs from PenguiFlow, on purpose: text of a reply that is not a finish is never sent as
answer. PenguiFlow streams `args.answer` of any reply whose `args` come before `next_node`, and
leaves it to the UI to drop chunks of an `action_seq` that did not answer; here the answer of a
reply whose `next_node` has not been seen yet is held back, then sent at once when `next_node`
turns out to be `final_response` (or dropped when it does not). A UI may still rely on
PenguiFlow's rule: the answer of an `action_seq` is complete when its `done=True` answer chunk
arrives, and the `finish` event's `answer_action_seq` names the decision that answered.

The reply is read by a small incremental JSON scanner: each character is looked at once, so a
reply fed one character at a time costs O(length), and `\\uXXXX` escapes (surrogate pairs
included) split across chunks decode as `json.loads` decodes them. Text before the JSON object
(prose, a code fence) is skipped; a `{` in prose that does not start valid JSON is given up on
at the first character that cannot follow it.
"""

from __future__ import annotations

import re
from typing import Any, Final

from ._actions import FINAL_RESPONSE, PlannerAction
from ._events import EmitFn

__all__ = ["AnswerStreamer", "action_finished", "action_started"]

EVENT: Final = "llm_stream_chunk"

#: keys whose string value (at the top of `args`) is the answer, as `PlannerAction.answer`
_ANSWER_KEYS: Final = frozenset({"answer", "raw_answer"})
#: longest key or `next_node` value kept: longer ones are none of the names we look for
_NAME_CAP: Final = 256
_SPECIAL = re.compile(r'["\\]')
_SIMPLE_ESCAPES: Final = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_WHITESPACE: Final = frozenset(" \t\r\n")
#: characters of `true`, `false`, `null` and numbers
_LITERAL: Final = frozenset("truefalsn0123456789+-.eE")

# What a string being read is (its role decides where its decoded text goes).
_KEY, _NEXT_NODE, _THOUGHT, _ANSWER, _OTHER = range(5)
# Whether the reply is a finish: not known yet, yes, no.
_UNKNOWN, _YES, _NO = range(3)


async def action_started(emit: EmitFn, *, action_seq: int) -> None:
    """Tell a UI that the model is deciding the action numbered `action_seq` (sent before
    every model call, as PenguiFlow does, whether the answer is streamed or not)."""
    await emit(
        EVENT,
        {"text": "", "done": False, "phase": "action", "channel": "thinking",
         "action_seq": action_seq},
    )  # fmt: skip


async def action_finished(emit: EmitFn, *, action_seq: int) -> None:
    """Tell a UI that the model call for `action_seq` ended (after the answer's own `done`
    chunk; sent when the call fails too)."""
    await emit(
        EVENT,
        {"text": "", "done": True, "phase": "action", "channel": "thinking",
         "action_seq": action_seq},
    )  # fmt: skip


class _Frame:
    """One open JSON container: an object (with the key being read) or an array."""

    __slots__ = ("is_object", "key", "want_key")

    def __init__(self, is_object: bool) -> None:
        self.is_object = is_object
        self.key: str | None = None
        # in an object: the next string is a key (after `{` or `,`), not a value
        self.want_key = is_object


class AnswerStreamer:
    """Reads one model reply as it streams and sends its answer (and thought) as
    `llm_stream_chunk` events through `emit`.

    Call `feed()` with each piece of raw text the client streams, then `finish()` once at the
    end of the reply. `stream_thought=False` leaves the thought out."""

    def __init__(self, emit: EmitFn, *, action_seq: int, stream_thought: bool = True) -> None:
        self._emit = emit
        self._action_seq = action_seq
        self._stream_thought = stream_thought
        #: positions of the reply examined so far (the cost of the scan, for tests)
        self.chars_scanned = 0
        self._stack: list[_Frame] = []
        self._seeking = True  # before the action's object: skipping prose and fences
        self._done = False  # after the action's object
        self._saw_action_key = False  # the object has `next_node` or `args`
        self._decision = _UNKNOWN
        self._answer_found = False  # an answer string started (only the first one counts)
        # the string being read, if any
        self._in_string = False
        self._role = _OTHER
        self._escape = False
        self._hex: list[str] | None = None  # digits of a `\u` escape, while reading them
        self._high: int | None = None  # a high surrogate waiting for its low half
        self._name: list[str] = []  # a key or `next_node` value being read
        self._name_len = 0
        self._literal: list[str] | None = None  # a literal (`null`, a number) being read
        # decoded text: of this feed (to send), held back (finish not known), sent so far
        self._answer_out: list[str] = []
        self._thought_out: list[str] = []
        self._held: list[str] = []
        self._sent: list[str] = []
        self._result: str | None = None
        self._finished = False

    # -- public -------------------------------------------------------------------------------

    @property
    def is_finish(self) -> bool | None:
        """Whether the reply is a finish, as far as the stream has told: None until its
        `next_node` has been read."""
        return None if self._decision == _UNKNOWN else self._decision == _YES

    async def feed(self, chunk: str, done: bool = False) -> None:
        """Read the next piece of the reply; send what it adds to the answer and thought.

        `done` is accepted so that `feed` can be a client's `on_stream_chunk(text, done)`
        callback itself; the end of the reply is `finish()`'s, not `done`'s."""
        if self._finished or not chunk:
            return
        if not self._done:
            self._scan(chunk)
        await self._flush()

    async def finish(self, *, action: PlannerAction | None = None) -> str | None:
        """End of the reply: the answer text streamed (after the final `done=True` chunk), or
        None when the reply was not a finish.

        `action`, the reply as the planner parsed it, decides when given: a finish whose
        answer was held back, or found where the stream did not look, is sent now (the part
        not sent yet, when what was sent is the start of it), so the caller always receives
        the answer of a finish as chunks. Calling it again returns the same result."""
        if self._finished:
            return self._result
        self._finished = True
        if self._in_string and self._role == _ANSWER:
            self._flush_high()  # the reply ended inside the answer (a cut reply)
        finishing = action.is_finish if action is not None else self._decision == _YES
        if not finishing:
            self._held.clear()
            self._answer_out.clear()
            await self._flush()
            return None
        self._answer_out += self._held
        self._held.clear()
        if action is not None and isinstance(action.answer, str):
            sent = "".join(self._sent) + "".join(self._answer_out)
            if action.answer.startswith(sent):
                rest = action.answer[len(sent) :]
                if rest:
                    self._answer_out.append(rest)
        await self._flush()
        await self._emit(EVENT, self._answer_extra("", done=True))
        self._result = "".join(self._sent)
        return self._result

    # -- sending ------------------------------------------------------------------------------

    def _answer_extra(self, text: str, *, done: bool) -> dict[str, Any]:
        return {"text": text, "done": done, "phase": "answer", "channel": "answer",
                "action_seq": self._action_seq}  # fmt: skip

    async def _flush(self) -> None:
        if self._thought_out:
            text = "".join(self._thought_out)
            self._thought_out.clear()
            if self._stream_thought:
                await self._emit(
                    EVENT,
                    {"text": text, "done": False, "phase": "observation",
                     "channel": "thinking", "action_seq": self._action_seq},
                )  # fmt: skip
        if self._answer_out:
            text = "".join(self._answer_out)
            self._answer_out.clear()
            self._sent.append(text)
            await self._emit(EVENT, self._answer_extra(text, done=False))

    # -- the scanner --------------------------------------------------------------------------

    def _scan(self, text: str) -> None:
        i, end = 0, len(text)
        while i < end and not self._done:
            if self._in_string:
                i = self._scan_string(text, i)
                continue
            char = text[i]
            i += 1
            self.chars_scanned += 1
            if self._seeking:
                if char == "{":
                    self._seeking = False
                    self._stack.append(_Frame(is_object=True))
                continue
            if self._literal is not None:
                if char in _LITERAL:
                    self._literal.append(char)
                    continue
                self._end_literal()
            self._structure(char)

    def _structure(self, char: str) -> None:
        """One character outside strings and literals, inside the action's object."""
        if char in _WHITESPACE:
            return
        frame = self._stack[-1]
        if char == '"':
            self._start_string(frame)
        elif frame.is_object and frame.want_key:
            if char == "}" and frame.key is None:  # `{}`
                self._close()
            else:
                self._give_up()
        elif char == ":":
            if not frame.is_object or frame.key is None:
                self._give_up()
        elif char == ",":
            if frame.is_object:
                frame.key = None
                frame.want_key = True
        elif char == "}":
            self._close() if frame.is_object else self._give_up()
        elif char == "]":
            self._give_up() if frame.is_object else self._close()
        elif char in "{[":
            self._stack.append(_Frame(is_object=char == "{"))
        elif char in _LITERAL:
            self._literal = [char]
        else:
            self._give_up()

    def _path_role(self) -> int:
        """The role of a value starting now, from where it is."""
        depth = len(self._stack)
        key = self._stack[-1].key
        if depth == 1:
            if key == "next_node":
                return _NEXT_NODE
            if key == "thought":
                return _THOUGHT
        elif (
            depth == 2
            and self._stack[0].key == "args"
            and self._stack[1].is_object
            and key in _ANSWER_KEYS
            and not self._answer_found
        ):
            return _ANSWER
        return _OTHER

    def _start_string(self, frame: _Frame) -> None:
        self._in_string = True
        self._escape = False
        self._hex = None
        self._high = None
        if frame.is_object and frame.want_key:
            self._role = _KEY
        else:
            self._role = self._path_role()
            if self._role == _ANSWER:
                self._answer_found = True
        if self._role in (_KEY, _NEXT_NODE):
            self._name = []
            self._name_len = 0

    def _end_string(self) -> None:
        self._in_string = False
        self._flush_high()
        frame = self._stack[-1]
        if self._role == _KEY:
            frame.key = "".join(self._name) if self._name_len <= _NAME_CAP else ""
            frame.want_key = False
            if len(self._stack) == 1 and frame.key in ("next_node", "args"):
                self._saw_action_key = True
        elif self._role == _NEXT_NODE and self._decision == _UNKNOWN:
            value = "".join(self._name).strip() if self._name_len <= _NAME_CAP else ""
            self._decide(value == FINAL_RESPONSE)

    def _end_literal(self) -> None:
        literal = "".join(self._literal or ())
        self._literal = None
        if self._path_role() == _NEXT_NODE and self._decision == _UNKNOWN:
            # our earlier dialect: `"next_node": null` is a finish
            self._decide(literal == "null")

    def _decide(self, finishing: bool) -> None:
        self._decision = _YES if finishing else _NO
        if finishing:
            self._answer_out += self._held
        self._held.clear()

    def _close(self) -> None:
        self._stack.pop()
        if self._stack:
            return
        if self._saw_action_key:
            self._done = True
        else:  # `{}` or an object of prose: the action may follow
            self._seeking = True

    def _give_up(self) -> None:
        """Not the action's JSON after all (a `{` in prose): look for the next object."""
        self._stack.clear()
        self._literal = None
        self._seeking = True
        self._saw_action_key = False
        if self._decision == _UNKNOWN:
            self._held.clear()
            self._answer_found = False

    # -- strings ------------------------------------------------------------------------------

    def _scan_string(self, text: str, i: int) -> int:
        """Read string content from `text[i:]` up to the closing quote or the end; return
        where it stopped. Plain runs are copied whole (no per-character work)."""
        end = len(text)
        while i < end:
            if self._hex is not None:
                char = text[i]
                i += 1
                self.chars_scanned += 1
                if char in _HEX:
                    self._hex.append(char)
                    if len(self._hex) == 4:
                        unit = int("".join(self._hex), 16)
                        self._hex = None
                        self._unit(unit)
                else:  # not JSON: keep the characters as written
                    self._text("\\u" + "".join(self._hex))
                    self._hex = None
                    i -= 1
                    self.chars_scanned -= 1
                continue
            if self._escape:
                char = text[i]
                i += 1
                self.chars_scanned += 1
                self._escape = False
                if char == "u":
                    self._hex = []
                else:
                    self._text(_SIMPLE_ESCAPES.get(char, char))
                continue
            match = _SPECIAL.search(text, i)
            stop = match.start() if match is not None else end
            if stop > i:
                self._text(text[i:stop])
                self.chars_scanned += stop - i
                i = stop
            if match is None:
                break
            i += 1
            self.chars_scanned += 1
            if match.group() == "\\":
                self._escape = True
            else:
                self._end_string()
                return i
        return i

    def _unit(self, unit: int) -> None:
        """One UTF-16 code unit of a `\\u` escape: a surrogate pair becomes one character,
        a lone surrogate stays as it is (as `json.loads` leaves it)."""
        if self._high is not None:
            high, self._high = self._high, None
            if 0xDC00 <= unit <= 0xDFFF:
                self._put(chr(0x10000 + ((high - 0xD800) << 10) + (unit - 0xDC00)))
                return
            self._put(chr(high))
        if 0xD800 <= unit <= 0xDBFF:
            self._high = unit
        else:
            self._put(chr(unit))

    def _text(self, text: str) -> None:
        self._flush_high()
        self._put(text)

    def _flush_high(self) -> None:
        if self._high is not None:
            high, self._high = self._high, None
            self._put(chr(high))

    def _put(self, text: str) -> None:
        role = self._role
        if role == _ANSWER:
            if self._decision == _YES:
                self._answer_out.append(text)
            elif self._decision == _UNKNOWN:
                self._held.append(text)
        elif role == _THOUGHT:
            self._thought_out.append(text)
        elif role in (_KEY, _NEXT_NODE) and self._name_len <= _NAME_CAP:
            self._name.append(text)
            self._name_len += len(text)
