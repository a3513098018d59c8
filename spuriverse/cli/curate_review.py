"""`spuriverse curate review`: stage 3, decisions -> DIR/reviews.jsonl (the review page, or --auto-accept)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path


def _default_reviewer() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in the environment (some containers)
        return ""


def register(bsub: argparse._SubParsersAction) -> None:
    review = bsub.add_parser(
        "review", help="review judged candidates in a local web page (scripted: --auto-accept)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Decide which judged candidates enter the benchmark. Every decision is appended to "
        "DIR/reviews.jsonl\n(durably, before the page hears back); the last decision per candidate wins, so a "
        "review can be\nstopped and resumed at any time.\n\n"
        "Default: serve the review page on http://127.0.0.1:PORT/ (the URL is printed; Ctrl-C stops it).\n"
        "Per candidate it shows the anchor image, the question and options, the model's wrong and raw\n"
        "answer, the right answer, the judge's verdict, rationale, attributes and scene descriptions (or\n"
        "its failure), and the synthesized images once `spuriverse synth` has made them. Attributes and\n"
        "descriptions are editable; only the fields you change are stored (as the decision's edits).\n"
        "By default only judged-spurious candidates are listed (tick 'show all', or open ?show=all).\n"
        "Keys: a accept, r reject, s skip, j / right arrow next, k / left arrow previous (not while\n"
        "typing in a field; Esc leaves it). The page opens at the first undecided candidate.\n\n"
        "--auto-accept: no page; accept every judged-spurious candidate that has both scene descriptions\n"
        "and no decision yet (reviewer 'auto-accept'), for scripted runs.")
    review.add_argument("curation_dir", type=Path, metavar="DIR", help="the curation folder (after `curate judge`)")
    review.add_argument("--auto-accept", action="store_true",
                        help="accept without a person (scripted runs) instead of serving the page")
    review.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only). Anything else exposes "
                        "the page and its decisions to the network: a warning is printed")
    review.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: a free one, printed)")
    review.add_argument("--reviewer", help="name recorded with each decision (default: the OS user name; "
                        "with --auto-accept: 'auto-accept')")
    review.set_defaults(func=_cmd_review)


def _cmd_review(a: argparse.Namespace) -> int:
    if a.auto_accept:
        from spuriverse.curate.review import auto_accept

        c = auto_accept(a.curation_dir, **({"reviewer": a.reviewer} if a.reviewer else {}))
        print(f"accepted {c['accepted']}; already reviewed {c['already_reviewed']}; not spurious "
              f"{c['not_spurious']}; spurious but without scene descriptions {c['no_descriptions']} -> "
              f"{a.curation_dir / 'reviews.jsonl'}")
        return 0
    return serve_review(a.curation_dir, a.host, a.port, a.reviewer or _default_reviewer())


def serve_review(curation_dir: Path, host: str, port: int, reviewer: str) -> int:
    from spuriverse.curate.review_app import LOOPBACK_NAMES, bind, create_app, is_loopback, serve, url_of

    loopback = is_loopback(host)
    try:
        app = create_app(curation_dir, reviewer, trusted_hosts=LOOPBACK_NAMES if loopback else None)
        sock = bind(host, port)
    except (OSError, ValueError) as exc:  # no judgments yet, a malformed line, the port in use
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not loopback:
        print(f"warning: listening on {host}, not loopback: anyone who can reach this address can see the "
              "candidates and (with the page's token) record decisions. There is no authentication and no TLS.",
              file=sys.stderr)
    print(f"review page for {curation_dir} at {url_of(sock)} (reviewer {reviewer or '?'}; Ctrl-C to stop)", flush=True)
    try:
        serve(app, sock)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0
