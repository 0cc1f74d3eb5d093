"""Which video each viewer watches and each post goes to, when a scenario has many.

Owns `Videos`: a set of videos by name, and how a number of viewers or posts
is shared among them, either evenly (round robin) or by Zipf's law with
exponent s (the video of rank k, from 1, gets a share proportional to 1/k^s).
It is pure arithmetic with no randomness, so the runner, every load-generator
process and the publisher compute the same assignment from the same three
numbers, and a run can be repeated exactly.

    >>> Videos("v", 3).assign(7)                  # round robin
    [0, 1, 2, 0, 1, 2, 0]
    >>> Videos("v", 3, zipf_s=1.1).counts(10)     # the first video gets the most
    [6, 2, 2]
    >>> Videos("hot").name(0), Videos("v", 3).name(2)
    ('hot', 'v2')
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Videos:
    """`count` videos named <prefix>0, <prefix>1, ... (just <prefix> when there is one);
    `zipf_s` 0 shares evenly, otherwise by Zipf's law with that exponent."""

    prefix: str
    count: int = 1
    zipf_s: float = 0.0

    def name(self, index: int) -> str:
        return self.prefix if self.count == 1 else f"{self.prefix}{index}"

    def counts(self, total: int) -> list[int]:
        """How many of `total` items each video gets: whole numbers that add up to
        `total`, each the video's exact share rounded down or up (largest remainder)."""
        if self.zipf_s == 0:
            return [
                total // self.count + (1 if k < total % self.count else 0)
                for k in range(self.count)
            ]
        weights = [(rank + 1) ** -self.zipf_s for rank in range(self.count)]
        scale = total / sum(weights)
        exact = [weight * scale for weight in weights]
        counts = [int(share) for share in exact]
        by_remainder = sorted(range(self.count), key=lambda k: counts[k] - exact[k])
        for k in by_remainder[: total - sum(counts)]:
            counts[k] += 1
        return counts

    def assign(self, total: int) -> list[int]:
        """The video of each of `total` items in order, each video's items spread evenly
        over the sequence (a video with c items has one near every total/c-th place),
        so that posts to a video are evenly spaced in time and any slice of the viewers
        (one load generator's share, the sampled ones) mixes hot and cold videos alike."""
        if self.zipf_s == 0:
            return [n % self.count for n in range(total)]
        places = [
            ((item + 0.5) / count, video)
            for video, count in enumerate(self.counts(total))
            for item in range(count)
        ]
        return [video for _, video in sorted(places)]
