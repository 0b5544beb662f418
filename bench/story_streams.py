"""Generated, event-labelled news streams for stories: one to train the scorer, one to measure it.

Both are built the same way (templated wire copy: each outlet words the same facts its own way,
picks its own subset of them, and adds topic boiler-plate that other events of the topic share),
but from **disjoint topics, templates and names**, so a figure measured on the evaluation stream
is not a figure the scorer was fitted on:

* :func:`training_stream` (bench/train_story_scorer.py fits on it): a tennis tournament's matches,
  one country's regional election results, quarterly company earnings, earthquakes and floods in
  several countries, court rulings, a flood, a hostage standoff and a bank outage that evolve over three days, and small local events
  quoting stock phrases (with ``towns=True``, also unrelated local events in one town a day or two
  apart); in templated copy, or (``style=Varied()``) in varied copy: a flash to a
  long feature, reworded, naming bystanders, some outlets a day or two late (:class:`Varied`);
* :func:`evaluation_stream` (bench/eval_stories.py measures on it): a football tournament's
  matches (same teams, same days), one country's politics (one prime minister, many bills),
  daily market closes (the same wording every day, other numbers), a wildfire and a ferry strike
  that evolve over days, and unrelated events sharing stock quoted phrases.

The hard cases are deliberate: same-topic events hours apart that share most of their
vocabulary, and one event reported over several days with new facts each day.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0
OUTLETS = ("wire-north", "daily-courier", "metro-news", "global-post", "radio-one", "evening-star")

# Background every outlet pads its copy with (real articles share far less wording than templates).
BACKGROUND = (
    "More details are expected to be released later in the day.",
    "The story was updated with further reaction after publication.",
    "Reporters at the scene described a tense but orderly atmosphere.",
    "Social media posts showed crowds gathering in the afternoon.",
    "Economists warned that rising costs continue to weigh on households across the region.",
    "Officials declined to comment further when contacted by telephone.",
    "The weather forecast for the coming days is cold and windy with occasional rain.",
    "Energy prices have fallen from their peak but remain high by historical standards.",
    "Opinion polls suggest public trust in institutions has weakened over the past decade.",
    "Several international observers followed developments closely.",
    "A government spokesperson said the situation was being monitored.",
    "Local businesses reported a drop in customers during the week.",
    "Transport unions have threatened further action over the winter.",
    "The European Commission published its latest growth forecasts on the same day.",
    "Analysts said it was too early to draw firm conclusions.",
    "Critics argued that the decision had been rushed without enough consultation.",
    "Supporters gathered outside the building holding banners and flags.",
    "The news agency said it had verified the footage independently.",
    "Broadcasters interrupted regular programming to carry the announcement.",
    "It was not immediately clear how long the disruption would last.",
    "Researchers at the national university have studied similar cases for years.",
    "Insurance companies said claims were likely to rise.",
    "Ministers are due to meet again next week to review the situation.",
    "The figures were compiled by the national statistics office.",
)

# What speakers' statements are made of (drawn per event; see _emit).
SPEECH_WORDS = tuple("""
decision responsibility families investigation evidence support security funding agreement pressure
recovery damage colleagues proud difficult serious unacceptable determined confident grateful
future months weeks together citizens country region community partners government authorities
priority commitment review measures response resources promise warning challenge solution
patience courage effort progress failure mistake lessons answers questions victims workers
""".split())  # noqa: SIM905 - a word list reads better as text

STOCK_QUOTES = (
    "I don't think anybody saw it coming",
    "We have to wait and see what happens next",
    "As far as I'm concerned it was going to be a difficult day",
    "Time and time again we have said the same thing",
    "It is what it is and we move on from here",
    "At the end of the day we did what we had to do",
    "We are taking it one day at a time",
    "I think everybody knows what is at stake here",
)


@dataclass(frozen=True)
class Topic:
    """One family of events: how to draw an event's facts and how an outlet writes it up."""

    name: str
    facts: Callable[[random.Random, int], dict[str, Any]]
    titles: Sequence[str]
    sentences: Sequence[str]
    boilerplate: Sequence[str]


# ------------------------------------------------------------------------- varied copy (training)
# What real multi-outlet reporting has and templated copy lacks (bench/RESULTS.md, issue 16): reports
# of one event from a one-line flash to a long feature, worded differently (synonyms, rounded
# numbers), naming people, places and bodies that have nothing to do with the event, and published
# up to two days after the first report. None of these names, places or words is in the evaluation
# stream's topics.

_BYSTANDERS = ("Jonas Richter", "Claire Dubois", "Marek Novak", "Ingrid Solberg", "Paolo Greco", "Hanna Lehtinen",
               "Victor Lambert", "Eva Horvath", "Tomasz Zielinski", "Sara Lindqvist", "Dmitri Volkov", "Aoife Byrne",
               "Lukas Hofer", "Irene Papadopoulou", "Julien Moreau", "Katarzyna Wrobel", "Felix Baumann", "Nora Quinn",
               "Stefano Ricci", "Agnes Kovacs")
_BODIES = ("the United Nations", "the Red Cross", "the World Bank", "Amnesty International", "the European Union",
           "the International Monetary Fund", "Greenpeace", "the World Health Organization")
_ELSEWHERE = ("Brussels", "Geneva", "Vienna", "Rome", "Warsaw", "Prague", "Zurich", "Munich", "Milan", "Dublin",
              "Athens", "Budapest")
_ASIDES = (
    "{person}, a researcher in {city}, said the case showed how quickly such situations can change.",
    "{body} has published several reports on similar cases in recent years.",
    "A comparable case in {city} two years ago drew criticism from {body}.",
    "{person} of {body} said more attention should be paid to the long-term effects.",
    "In {city}, {person} said people were following the news closely.",
    "{person}, who has written about the subject for {body}, called for a full review.",
    "Commentators in {city} compared the situation with events of the previous decade.",
    "{body} said it was ready to help if asked.",
)
_SYNONYMS = {
    "said": ("told reporters", "stated", "added"), "beat": ("defeated", "overcame"), "match": ("contest", "encounter"),
    "struck": ("hit", "shook"), "earthquake": ("quake", "tremor"), "people": ("residents", "persons"),
    "reported": ("posted", "announced"), "company": ("firm", "group"), "cut": ("shed", "eliminate"),
    "homes": ("houses", "properties"), "police": ("officers", "authorities"), "customers": ("clients", "users"),
    "outage": ("failure", "disruption"), "results": ("figures", "numbers"), "election": ("vote", "poll"),
    "guilty": ("culpable",), "killed": ("dead",), "began": ("started",), "released": ("freed",),
    "surrounded": ("encircled",), "appeal": ("challenge",), "rain": ("downpours",), "deep": ("below ground",),
}
_SYN_RE = re.compile(r"\b(" + "|".join(_SYNONYMS) + r")\b")
_BIG_INT_RE = re.compile(r"(?<![\d.,-])(\d{2,})(?![\d.,-])")


@dataclass(frozen=True)
class Varied:
    """How far an outlet's copy strays from the facts' templates (see the comment above)."""

    flash: float = 0.25      # headline plus one or two facts
    feature: float = 0.3     # long feature: most facts, much background, asides naming bystanders
    asides: int = 4          # at most this many bystander sentences in a feature (half that otherwise)
    synonym: float = 0.5     # chance that a word with synonyms is reworded
    round_numbers: float = 0.3  # chance that an outlet rounds the counts it gives ("about 300")
    late: float = 0.3        # chance that a later outlet's report comes 8-56 h after the first
    date_only: float = 0.0   # chance that a report gives its date only (published_precision "day"; see RESULTS.md)


def _reword(rng: random.Random, text: str, style: Varied, rounding: bool) -> str:
    text = _SYN_RE.sub(lambda m: rng.choice(_SYNONYMS[m.group(1)]) if rng.random() < style.synonym else m.group(1), text)
    if rounding:
        def rounded(m: re.Match[str]) -> str:
            n = int(m.group(1))
            step = 10 if n < 200 else 100
            return f"{rng.choice(('about', 'nearly', 'more than', 'some'))} {max(step, round(n / step) * step)}"
        text = _BIG_INT_RE.sub(rounded, text)
    return text


def _aside(rng: random.Random) -> str:
    text = rng.choice(_ASIDES).format(person=rng.choice(_BYSTANDERS), body=rng.choice(_BODIES),
                                      city=rng.choice(_ELSEWHERE))
    return text[0].upper() + text[1:]


def _varied_article(rng: random.Random, topic: Topic, facts: dict[str, Any], stock: bool, style: Varied) -> tuple[str, str]:
    rounding = rng.random() < style.round_numbers
    title = _reword(rng, rng.choice(topic.titles).format(**facts), style, rounding)
    kind = rng.random()
    sentences = list(topic.sentences)
    if kind < style.flash:
        flash = rng.sample(sentences, k=min(len(sentences), rng.randint(1, 2)))
        return title, " ".join(_reword(rng, s.format(**facts), style, rounding) for s in flash)
    feature = kind > 1.0 - style.feature
    n_facts = rng.randint(max(2, len(sentences) - 2), len(sentences)) if feature else rng.randint(2, min(4, len(sentences)))
    lead, *rest = rng.sample(sentences, k=n_facts)
    lines = [_reword(rng, s.format(**facts), style, rounding) for s in rest]
    lines += rng.sample(BACKGROUND, k=rng.randint(5, 12) if feature else rng.randint(1, 4))
    lines += [_aside(rng) for _ in range(rng.randint(1, style.asides) if feature else rng.randint(0, style.asides // 2))]
    rng.shuffle(lines)
    lines.insert(0, _reword(rng, lead.format(**facts), style, rounding))  # the lead is a fact, as in any report
    lines += rng.sample(list(topic.boilerplate), k=min(len(topic.boilerplate), rng.randint(0, 2)))
    if rng.random() < 0.6:
        said = facts["_said"]
        cut = said.split()
        said = " ".join(cut[: max(8, len(cut) // 2)]) if rng.random() < 0.4 else said
        lines.append(f'"{said}," {facts.get("speaker", "a spokesperson")} said.')
    if stock:
        lines.append(f'"{rng.choice(STOCK_QUOTES)}," {facts.get("speaker", "a spokesperson")} said.')
    paragraphs, i = [], 0
    while i < len(lines):  # one to three sentences a paragraph
        k = rng.randint(1, 3)
        paragraphs.append(" ".join(lines[i:i + k]))
        i += k
    return title, "\n\n".join(paragraphs)


def _article(rng: random.Random, topic: Topic, facts: dict[str, Any], stock: bool) -> tuple[str, str]:
    title = rng.choice(topic.titles).format(**facts)
    if rng.random() < 0.25:  # a wire flash: the headline and one or two facts
        flash = rng.sample(list(topic.sentences), k=min(len(topic.sentences), rng.randint(1, 2)))
        return title, " ".join(s.format(**facts) for s in flash)
    body = rng.sample(list(topic.sentences), k=min(len(topic.sentences), rng.randint(2, 4)))
    lines = [s.format(**facts) for s in body]
    lines += rng.sample(BACKGROUND, k=rng.randint(2, 5))
    rng.shuffle(lines)
    lines += rng.sample(list(topic.boilerplate), k=min(len(topic.boilerplate), rng.randint(1, 2)))
    if rng.random() < 0.7:  # most wire copy quotes the main statement
        said = facts["_said"]
        cut = said.split()
        said = " ".join(cut[: max(8, len(cut) // 2)]) if rng.random() < 0.3 else said
        lines.append(f'"{said}," {facts.get("speaker", "a spokesperson")} said.')
    if stock:
        speaker = facts.get("speaker", "a spokesperson")
        lines.append(f'"{rng.choice(STOCK_QUOTES)}," {speaker} said.')
    return title, "\n\n".join(lines)


def _emit(rng: random.Random, topic: Topic, facts: dict[str, Any], event: str, ts: float,
          outlets: int, stock: float, out: list[dict[str, Any]], style: Varied | None = None) -> None:
    if "_said" not in facts:  # the statement the event's speaker made: its own words, not a template's
        words = rng.sample(SPEECH_WORDS, 16)
        facts["_said"] = (" ".join(words[:8]) + ", " + " ".join(words[8:])).capitalize()
    for n, source in enumerate(rng.sample(OUTLETS, outlets)):
        if style is None:
            title, text = _article(rng, topic, facts, rng.random() < stock)
            t = ts + rng.uniform(0, 5 * HOUR)
        else:
            title, text = _varied_article(rng, topic, facts, rng.random() < stock, style)
            late = n > 0 and rng.random() < style.late
            t = ts + (rng.uniform(8, 56) if late else rng.uniform(0, 5)) * HOUR
        row = {"id": f"{event}/{source}/{len(out)}", "event": event, "source": source, "title": title,
               "text": text, "ts": t, "published_at": datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")}
        # Drawn apart from ``rng`` so the rest of the stream is the same with or without date-only feeds.
        if style is not None and random.Random(f"{event}/{source}/{n}").random() < style.date_only:
            row["published_at"] = row["published_at"][:10]  # what a date-only feed says: the day
        out.append(row)


def _pick(rng: random.Random, pool: Sequence[str], k: int) -> list[str]:
    return rng.sample(list(pool), k)


# ------------------------------------------------------------------------------------ evaluation

_FOOT_TEAMS = ("Norway", "Sweden", "Denmark", "Iceland", "Estonia", "Latvia", "Lithuania", "Poland")
_FOOT_PLAYERS = ("Lars Eriksen", "Mats Holm", "Tomas Vaitkus", "Janis Ozols", "Karl Tamm", "Piotr Nowak",
                 "Gudmundur Jonsson", "Anders Berg", "Mikkel Dahl", "Jakub Lewandowicz", "Rasmus Lind",
                 "Ole Strand", "Martins Kalnins", "Siim Kask", "Henrik Vik", "Darius Petraitis")
_FOOT_GROUNDS = (("Ullevaal Stadium", "Oslo"), ("Friends Arena", "Stockholm"), ("Parken", "Copenhagen"),
                 ("A. Le Coq Arena", "Tallinn"))


def _football(rng: random.Random, i: int) -> dict[str, Any]:
    home, away = _pick(rng, _FOOT_TEAMS, 2)
    ground, city = rng.choice(_FOOT_GROUNDS)
    a, b = rng.randint(0, 4), rng.randint(0, 3)
    s1, s2 = _pick(rng, _FOOT_PLAYERS, 2)
    return {"home": home, "away": away, "a": a, "b": b, "ground": ground, "city": city, "s1": s1, "s2": s2,
            "m1": rng.randint(3, 44), "m2": rng.randint(46, 90), "crowd": f"{rng.randint(18, 52)},{rng.randint(100, 999)}",
            "speaker": f"the {home} coach"}


FOOTBALL = Topic(
    "football-cup", _football,
    titles=("{home} {a}-{b} {away}: Nordic Cup group match report",
            "{home} and {away} meet in Nordic Cup group stage, finishing {a}-{b}",
            "Nordic Cup: {s1} on target as {home} face {away} in {city}"),
    sentences=("{home} and {away} played out a {a}-{b} result in the Nordic Cup group stage at {ground} in {city}.",
               "{s1} opened the scoring in the {m1}th minute after a corner was only half cleared.",
               "The goal by {s1} came {m1} minutes in, a low shot inside the near post.",
               "{s2} scored in the {m2}th minute for {away} in front of a crowd of {crowd}.",
               "A crowd of {crowd} watched the match in {city} on a cold evening.",
               "{away} pressed late on but the {a}-{b} scoreline at {ground} stood.",
               "{home} now move on to their next group game while {away} must regroup after the {a}-{b}."),
boilerplate=("The Nordic Cup group stage continues with two matches every day this week.",
                 "The top two teams in each group reach the semi-finals of the tournament.",
                 "Both coaches rotated their squads because of the busy tournament schedule.",
                 "Tickets for the remaining group matches are still on sale."),
)

_PT_BILLS = (("pension reform bill", "raise the retirement age to 67", "pensions"),
             ("defence budget", "lift military spending to 2.5 percent of output", "defence"),
             ("housing law", "cap rents in Lisbon and Porto for three years", "housing"),
             ("immigration bill", "shorten asylum decisions to six months", "immigration"),
             ("wildfire fund", "create a permanent fund for forest fire prevention", "forests"),
             ("teachers pay deal", "give teachers a 9 percent rise over two years", "education"),
             ("rail investment plan", "build a high-speed line between Lisbon and Madrid", "transport"),
             ("energy tax cut", "cut the tax on household electricity bills", "energy"))
_PT_MINISTERS = ("Ana Ferreira", "Rui Almeida", "Catarina Sousa", "Miguel Costa", "Joana Pires", "Tiago Martins",
                 "Helena Rocha", "Bruno Carvalho")


def _portugal(rng: random.Random, i: int) -> dict[str, Any]:
    bill, aim, area = _PT_BILLS[i % len(_PT_BILLS)]
    yes = rng.randint(100, 140)
    return {"bill": bill, "aim": aim, "area": area, "minister": _PT_MINISTERS[i % len(_PT_MINISTERS)],
            "yes": yes, "no": 230 - yes - rng.randint(0, 10), "speaker": "Prime Minister Luis Montenegro"}


PORTUGAL = Topic(
    "portugal-politics", _portugal,
    titles=("Portugal's parliament votes on {bill}", "Portuguese MPs back {bill} by {yes} votes to {no}",
            "Montenegro government wins vote on {bill}", "Lisbon: {minister} steers {bill} through parliament"),
    sentences=("Portugal's parliament approved the government's {bill} by {yes} votes to {no} on Friday.",
               "The {bill} will {aim}, according to the text adopted in Lisbon.",
               "{minister}, the minister responsible for {area}, defended the {bill} in the chamber.",
               "The opposition Socialists voted against the {bill}, saying it would not {aim}.",
               "The vote on the {bill} ended {yes} to {no} after a debate of several hours.",
               "{minister} said the {bill} would {aim} before the end of the parliament's term."),
boilerplate=("Prime Minister Luis Montenegro leads a minority government in Portugal.",
                 "The Assembly of the Republic in Lisbon has 230 seats.",
                 "The Socialist Party and Chega are the largest opposition groups in parliament.",
                 "President Marcelo Rebelo de Sousa must sign laws before they take effect."),
)


def _market(rng: random.Random, i: int) -> dict[str, Any]:
    up = rng.random() < 0.5
    movers = _pick(rng, ("Shell", "BP", "Unilever", "HSBC", "Barclays", "Rolls-Royce", "Tesco", "Vodafone",
                         "AstraZeneca", "Rio Tinto", "Glencore", "Lloyds"), 2)
    return {"dir": "rose" if up else "fell", "dirn": "higher" if up else "lower",
            "pct": f"{rng.uniform(0.1, 1.9):.2f}", "level": f"{rng.randint(7900, 8400)}.{rng.randint(10, 99)}",
            "m1": movers[0], "m2": movers[1], "mp1": f"{rng.uniform(1.5, 6.5):.1f}", "mp2": f"{rng.uniform(1.5, 6.5):.1f}",
            "gbp": f"1.{rng.randint(2400, 2899)}", "speaker": "one trader"}


MARKETS = Topic(
    "london-close", _market,
    titles=("FTSE 100 {dir} {pct}% to close at {level}", "London stocks close {dirn}; FTSE at {level}",
            "Markets: FTSE {dir} {pct} percent, {m1} leads"),
    sentences=("The FTSE 100 index {dir} {pct} percent to close at {level} points on Monday.",
               "London's blue-chip index finished {dirn} at {level}, a move of {pct} percent.",
               "{m1} shares moved {mp1} percent, the biggest change on the index.",
               "{m2} was also among the main movers, its shares changing {mp2} percent.",
               "The pound traded at {gbp} dollars late in the session."),
boilerplate=("Traders are watching for the Bank of England's next interest rate decision.",
                 "Volumes were close to their average for the time of year.",
                 "The FTSE 250 index of mid-sized companies broadly tracked the main market."),
)

_FIRE_DAYS = (
    ("A wildfire broke out near {town} in {region} on {day}, burning {ha} hectares of pine forest.",
     "Wildfire near {town} burns {ha} hectares", "Firefighters battle blaze near {town} in {region}"),
    ("Authorities evacuated {evac} residents from villages around {town} as the {region} wildfire spread.",
     "{region} wildfire: {evac} evacuated near {town}", "Fire near {town} forces evacuations"),
    ("Firefighters said the wildfire near {town} was contained after burning {ha2} hectares in {region}.",
     "{town} wildfire contained after three days", "{region} fire near {town} under control"),
)


def _wildfire(rng: random.Random, i: int) -> dict[str, Any]:
    town, region = rng.choice((("Castelo Branco", "Beira Baixa"), ("Monchique", "the Algarve"),
                               ("Kalamata", "Messenia"), ("Tempio", "Sardinia")))
    return {"town": town, "region": region, "ha": rng.randint(300, 900), "ha2": rng.randint(2000, 6000),
            "evac": rng.randint(400, 2500), "planes": rng.randint(4, 12), "chief": "fire chief Paulo Neves",
            "speaker": "fire chief Paulo Neves", "day": "Monday"}


def _fire_topic(day: int) -> Topic:
    lead, t1, t2 = _FIRE_DAYS[day]
    return Topic("wildfire", _wildfire, titles=(t1, t2),
                 sentences=(lead, "{planes} water-bombing planes were sent to the fire near {town}.",
                            "Strong winds in {region} drove the flames towards {town}, {chief} said.",
                            "Roads around {town} in {region} were closed because of the wildfire.",
                            "The wildfire near {town} is the largest in {region} this year."),
                 boilerplate=("Summers in southern Europe have brought longer and more intense fire seasons.",
                              "Civil protection services urged people to avoid lighting fires outdoors."))


_STRIKE_DAYS = (
    ("Crews on {operator} ferries between {a} and {b} walked out on {day} in a dispute over pay.",
     "{operator} ferry crews strike on {a}-{b} route", "Ferry strike halts {a} to {b} crossings"),
    ("The {operator} strike left {stranded} passengers stranded as talks with the {union} union failed.",
     "{operator} strike: talks fail, {stranded} stranded", "No deal in {operator} ferry dispute"),
    ("{operator} and the {union} union agreed a {pay} percent pay rise, ending the ferry strike.",
     "{operator} ferry strike ends with {pay}% pay deal", "Ferries resume between {a} and {b}"),
)


def _strike(rng: random.Random, i: int) -> dict[str, Any]:
    op, a, b = rng.choice((("Viking Line", "Helsinki", "Stockholm"), ("Tallink", "Tallinn", "Helsinki"),
                           ("Stena Line", "Gothenburg", "Kiel")))
    return {"operator": op, "a": a, "b": b, "stranded": rng.randint(1200, 6000), "union": "Seafarers",
            "pay": rng.randint(4, 9), "day": "Tuesday", "speaker": f"a {op} spokeswoman"}


def _strike_topic(day: int) -> Topic:
    lead, t1, t2 = _STRIKE_DAYS[day]
    return Topic("ferry-strike", _strike, titles=(t1, t2),
                 sentences=(lead, "{operator} cancelled all sailings between {a} and {b}.",
                            "The {union} union said its members on {operator} ships wanted pay to keep up with prices.",
                            "Freight lorries queued at the port in {a} because of the {operator} dispute.",
                            "{operator} said passengers between {a} and {b} could rebook free of charge."),
                 boilerplate=("Ferries carry millions of passengers across the Baltic Sea every year.",
                              "Port authorities advised travellers to check before setting off."))


_LOCAL = (("museum", "The {town} city museum reopened on {day} after a two-year renovation costing {cost} million euros.",
           "{town} museum reopens after renovation"),
          ("bridge", "The {town} river bridge was closed to traffic on {day} after engineers found cracks in a pillar.",
           "Cracks close {town} bridge"),
          ("school", "A secondary school in {town} won the national robotics contest on {day} with a rescue drone.",
           "{town} school wins robotics contest"),
          ("zoo", "{town} zoo welcomed two red panda cubs on {day}, the first born there in {cost} years.",
           "Red panda cubs born at {town} zoo"),
          ("marathon", "More than {cost} thousand runners took part in the {town} marathon on {day}.",
           "Thousands run {town} marathon"),
          ("library", "{town} opened a new central library on {day} with space for {cost} thousand books.",
           "New library opens in {town}"))
_LOCAL_TOWNS = ("Aarhus", "Bergen", "Uppsala", "Tartu", "Kaunas", "Turku", "Gdansk", "Malmo", "Odense", "Riga")
_LOCAL_MORE = ("The mayor of {town} attended the event.", "Local residents in {town} welcomed the news.")
_LOCAL_BOILER = ("The city council will discuss the matter at its next meeting.",)


def _local_events(rng: random.Random, n: int, t: float, out: list[dict[str, Any]], style: Varied | None = None) -> None:
    for i in range(n):
        kind, lead, title = _LOCAL[i % len(_LOCAL)]
        facts = {"town": _LOCAL_TOWNS[i % len(_LOCAL_TOWNS)], "day": "Wednesday", "cost": rng.randint(5, 60),
                 "speaker": "the mayor"}
        topic = Topic(f"local-{kind}", lambda r, j: {}, (title,), (lead, *_LOCAL_MORE), _LOCAL_BOILER)
        _emit(rng, topic, facts, f"local-{kind}-{i}", t + i * 1.5 * HOUR, rng.randint(1, 2), 1.0, out, style)


def evaluation_stream(seed: int = 7) -> list[dict[str, Any]]:
    """~90 articles (40 events) over a week (see module doc), in publication order."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(12):  # four days of cup matches, three a day, a few hours apart
        _emit(rng, FOOTBALL, FOOTBALL.facts(rng, i), f"match-{i}", T0 + (i // 3) * 24 * HOUR + (i % 3) * 3 * HOUR,
              rng.randint(2, 3), 0.5, out)
    for i in range(8):  # a bill a day in one parliament
        _emit(rng, PORTUGAL, PORTUGAL.facts(rng, i), f"portugal-{i}", T0 + i * 20 * HOUR, rng.randint(2, 3), 0.3, out)
    for i in range(6):  # the same market report every evening
        _emit(rng, MARKETS, MARKETS.facts(rng, i), f"close-{i}", T0 + 11 * HOUR + i * 24 * HOUR, 2, 0.2, out)
    for k, (topics, make) in enumerate(((_fire_topic, _wildfire), (_strike_topic, _strike))):
        facts = make(rng, k)
        for day in range(3):  # one event over three days, new facts each day
            _emit(rng, topics(day), facts, f"evolving-{k}", T0 + (2 + 3 * k) * HOUR + day * 24 * HOUR, 2, 0.3, out)
    _local_events(rng, 12, T0 + 5 * HOUR, out)
    return sorted(out, key=lambda e: (e["ts"], e["id"]))


# ------------------------------------------------------------------------------------ training

_TENNIS = ("Elena Markova", "Sofia Brandt", "Yuki Tanaka", "Ana Ribeiro", "Chloe Martin", "Iga Sowa",
           "Laura Fischer", "Mia Jensen")


def _tennis(rng: random.Random, i: int) -> dict[str, Any]:
    w, loser = _pick(rng, _TENNIS, 2)
    return {"w": w, "l": loser, "s1": f"6-{rng.randint(0, 4)}", "s2": f"7-{rng.randint(5, 6)}",
            "court": rng.choice(("Centre Court", "Court One", "Court Two")), "hours": rng.randint(1, 3),
            "aces": rng.randint(2, 14), "speaker": w}


def _tennis_draw(rng: random.Random, i: int) -> dict[str, Any]:
    """A match of a round robin (circle method): four a day, no pair of players meets twice."""
    day, match = divmod(i, 4)
    ring = list(_TENNIS[1:])
    ring = ring[day % 7:] + ring[: day % 7]
    pairs = [(_TENNIS[0], ring[0])] + [(ring[k], ring[7 - k]) for k in range(1, 4)]
    w, loser = rng.sample(pairs[match], 2)
    return {"w": w, "l": loser, "s1": f"6-{rng.randint(0, 4)}", "s2": f"7-{rng.randint(5, 6)}",
            "court": rng.choice(("Centre Court", "Court One", "Court Two")), "hours": rng.randint(1, 3),
            "aces": rng.randint(2, 14), "speaker": w}


TENNIS = Topic(
    "tennis-open", _tennis,
    titles=("{w} beats {l} at the Riviera Open", "Riviera Open: {w} through after {s1} {s2} win over {l}",
            "{l} out of Riviera Open, beaten by {w}"),
    sentences=("{w} beat {l} {s1} {s2} in the second round of the Riviera Open.",
               "The match on {court} lasted {hours} hours and {w} served {aces} aces.",
               "{l} had a break point early in the second set but {w} held on.",
               "{w} will play the winner of the next match on {court} tomorrow."),
boilerplate=("The Riviera Open is played on clay courts in Nice.",
                 "Rain delayed the start of play on several courts."),
)


def _region_vote(rng: random.Random, i: int) -> dict[str, Any]:
    region = ("Bavaria", "Saxony", "Hesse", "Bremen", "Thuringia", "Brandenburg")[i % 6]
    return {"region": region, "cdu": rng.randint(18, 38), "spd": rng.randint(12, 30), "afd": rng.randint(10, 32),
            "turnout": rng.randint(55, 74), "leader": ("Markus Weber", "Jana Koch", "Stefan Braun", "Petra Lang",
                                                       "Uwe Hartmann", "Nina Vogel")[i % 6],
            "speaker": "the party chairman"}


ELECTIONS = Topic(
    "german-state-votes", _region_vote,
    titles=("{region} state election: CDU on {cdu} percent", "{leader} claims victory in {region} vote",
            "AfD wins {afd}% in {region}"),
    sentences=("Voters in {region} gave the CDU {cdu} percent in Sunday's state election.",
               "The SPD took {spd} percent and the AfD {afd} percent in {region}.",
               "Turnout in {region} was {turnout} percent, officials said.",
               "{leader} said the result in {region} was a clear mandate to govern."),
boilerplate=("Chancellor Friedrich Merz's coalition is watching the state votes closely.",
                 "State elections are seen as a test for the federal government in Berlin."),
)


def _earnings(rng: random.Random, i: int) -> dict[str, Any]:
    co, ceo = (("Nokia", "Pekka Lundmark"), ("Ericsson", "Borje Ekholm"), ("Volvo", "Martin Lundstedt"),
               ("Maersk", "Vincent Clerc"), ("Equinor", "Anders Opedal"), ("Novo Nordisk", "Lars Jorgensen"))[i % 6]
    return {"co": co, "ceo": ceo, "rev": f"{rng.uniform(2, 30):.1f}", "profit": f"{rng.uniform(0.2, 4):.2f}",
            "q": rng.choice(("first", "second", "third")), "jobs": rng.randint(300, 2000), "speaker": ceo}


EARNINGS = Topic(
    "earnings", _earnings,
    titles=("{co} {q}-quarter profit at {profit} billion", "{co} results: revenue {rev} billion, {jobs} jobs to go",
            "{ceo} says {co} on track after {q} quarter"),
    sentences=("{co} reported {q}-quarter revenue of {rev} billion euros on Thursday.",
               "Operating profit at {co} came in at {profit} billion euros.",
               "{co} chief executive {ceo} said the company would cut {jobs} jobs.",
               "Shares in {co} moved sharply after the {q}-quarter results were published."),
boilerplate=("Analysts had expected weaker results because of slowing demand.",
                 "European companies are reporting their quarterly figures this week."),
)


def _quake(rng: random.Random, i: int) -> dict[str, Any]:
    place, country = (("Izmir", "Turkey"), ("Sendai", "Japan"), ("Valparaiso", "Chile"), ("Patras", "Greece"),
                      ("Cusco", "Peru"), ("Bucharest", "Romania"), ("Kathmandu", "Nepal"))[i % 7]
    return {"place": place, "country": country, "mag": f"{rng.uniform(4.8, 7.4):.1f}", "dead": rng.randint(0, 40),
            "depth": rng.randint(8, 70), "speaker": "a civil defence official"}


QUAKES = Topic(
    "earthquakes", _quake,
    titles=("Magnitude {mag} earthquake strikes near {place}", "{country} quake: {dead} dead near {place}",
            "Strong earthquake shakes {place}, {country}"),
    sentences=("A magnitude {mag} earthquake struck near {place} in {country} early on Saturday.",
               "The quake was {depth} kilometres deep, the geological survey said.",
               "At least {dead} people were killed near {place}, officials in {country} said.",
               "Rescuers searched collapsed buildings in {place} through the night."),
boilerplate=("Earthquakes are common in the region, which lies on active fault lines.",
                 "Aftershocks are expected for several days."),
)


def _court(rng: random.Random, i: int) -> dict[str, Any]:
    who, what = (("a former mayor of Naples", "corruption"), ("a Danish shipping executive", "tax fraud"),
                 ("two climate activists", "vandalism at a gallery"), ("a Belgian football agent", "money laundering"),
                 ("a Dutch hospital", "negligence"))[i % 5]
    return {"who": who, "what": what, "years": rng.randint(1, 9), "fine": rng.randint(10, 900),
            "judge": ("Judge Maria Conti", "Judge Erik Holm", "Judge Lisa Smit", "Judge Jan Peeters", "Judge Ruth Berg")[i % 5],
            "speaker": "the defence lawyer"}


COURTS = Topic(
    "court-rulings", _court,
    titles=("Court convicts {who} of {what}", "{who} sentenced to {years} years for {what}",
            "{judge} rules against {who}"),
    sentences=("A court found {who} guilty of {what} on Tuesday.",
               "{judge} sentenced {who} to {years} years and a fine of {fine} thousand euros.",
               "Prosecutors had said {who} was at the centre of the {what} case.",
               "Lawyers for {who} said they would appeal the {what} verdict."),
boilerplate=("The ruling can be appealed to a higher court.", "The trial lasted several months."),
)

_FLOOD_DAYS = (
    ("The river {river} burst its banks in {town} on {day} after two days of heavy rain.",
     "{river} floods {town}", "Heavy rain floods {town}"),
    ("Soldiers built sandbag walls in {town} as the {river} rose to {level} metres.",
     "{river} at {level} metres as {town} braces", "Army helps {town} as {river} flood rises"),
    ("The {river} began to fall in {town}, leaving damage estimated at {cost} million euros.",
     "{river} flood recedes in {town}", "Clean-up begins in {town} after {river} flood"),
)


def _flood(rng: random.Random, i: int) -> dict[str, Any]:
    return {"river": "Vistula", "town": "Sandomierz", "level": f"{rng.uniform(7, 9):.1f}", "cost": rng.randint(40, 300),
            "day": "Sunday", "speaker": "the town mayor"}


def _flood_topic(day: int) -> Topic:
    lead, t1, t2 = _FLOOD_DAYS[day]
    return Topic("flood", _flood, titles=(t1, t2),
                 sentences=(lead, "Hundreds of homes in {town} were without power because of the {river} flood.",
                            "Emergency services in {town} evacuated a care home near the {river}."),
                 boilerplate=("Poland has seen several severe floods in recent decades.",))


_STANDOFF_DAYS = (
    ("Police surrounded a farmhouse near {town} on {day} where an armed man was holding {n} people.",
     "Armed man holds {n} hostages near {town}", "Police siege at farmhouse near {town}"),
    ("Negotiators near {town} secured the release of two of the {n} hostages overnight.",
     "Two hostages freed in {town} siege", "{town} standoff: negotiators free two"),
    ("The armed man near {town} surrendered to police after a 50-hour standoff, freeing all hostages.",
     "{town} siege ends, gunman surrenders", "Hostages safe as {town} standoff ends"),
)


def _standoff(rng: random.Random, i: int) -> dict[str, Any]:
    return {"town": ("Ghent", "Linz", "Aalborg")[i % 3], "n": rng.randint(3, 6), "day": "Thursday",
            "speaker": "the police commander"}


def _standoff_topic(day: int) -> Topic:
    lead, t1, t2 = _STANDOFF_DAYS[day]
    return Topic("standoff", _standoff, titles=(t1, t2),
                 sentences=(lead, "Special forces and negotiators were deployed to the farmhouse near {town}.",
                            "Residents near {town} were told to stay indoors during the police operation.",
                            "The police commander in {town} said the hostages had been given food and water."),
                 boilerplate=("Hostage situations in the country are rare.",))


_OUTAGE_DAYS = (
    ("A nationwide outage hit {bank} on {day}, leaving customers unable to pay by card or log in.",
     "{bank} outage leaves customers unable to pay", "Card payments fail at {bank}"),
    ("{bank} said a faulty software update caused the outage that hit {n} thousand customers.",
     "{bank} blames software update for outage", "Outage at {bank}: software update to blame"),
    ("{bank} said it would compensate customers after services were fully restored on {day2}.",
     "{bank} restores services, promises compensation", "{bank} to compensate customers after outage"),
)


def _outage(rng: random.Random, i: int) -> dict[str, Any]:
    return {"bank": ("Danske Bank", "Nordea", "ING")[i % 3], "n": rng.randint(200, 900), "day": "Friday",
            "day2": "Sunday", "speaker": "the bank's chief executive"}


def _outage_topic(day: int) -> Topic:
    lead, t1, t2 = _OUTAGE_DAYS[day]
    return Topic("bank-outage", _outage, titles=(t1, t2),
                 sentences=(lead, "Customers of {bank} reported problems with the mobile app and cash machines.",
                            "The financial regulator said it had asked {bank} for a full report.",
                            "{bank} apologised to its {n} thousand affected customers."),
                 boilerplate=("Banks have faced growing pressure over the reliability of their systems.",))


# Several unrelated local events in one town within a day or two (training only): what a regional
# paper's feed is made of. They share the town (a place id with a name cosine of 1 when it is the only
# name), its mayor and the vocabulary of local news, and nothing else: other incidents, people,
# streets, numbers and times. Without them the scorer never sees that one shared town is not one
# event (bench/RESULTS.md, issue 16, "Same-town distractors"). Towns, people and templates are the
# training stream's own.
_TOWN_POOL = ("Tampere", "Graz", "Leuven", "Trondheim", "Lund", "Innsbruck", "Brno", "Eindhoven", "Stavanger",
              "Jyvaskyla", "Tilburg", "Wroclaw")
_TOWNSFOLK = ("Henrik Aaltonen", "Birgit Steiner", "Pieter Claes", "Solveig Haugen", "Magnus Ekdahl", "Veronika Dvorak",
              "Ruud Jansen", "Leena Virtanen", "Gerhard Pichler", "Annelies Peeters", "Kristian Bakke", "Ondrej Novotny",
              "Maja Svensson", "Johanna Koskinen", "Wim de Vries", "Elin Nygaard")
_STREETS = ("Harbour Street", "Mill Lane", "Station Road", "Church Street", "Market Square", "Park Avenue",
            "Canal Road", "Hill Street")
_TOWN_NEWS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("warehouse-fire", ("Fire destroys warehouse in {town}", "{town} warehouse blaze on {street}"),
     ("A fire destroyed a furniture warehouse on {street} in {town} at about {hour} on {day}.",
      "{n} fire crews fought the blaze for {dur} hours, fire chief {person} said.",
      "Nobody was hurt, but smoke closed {street} to traffic in {town} until the evening.",
      "Investigators in {town} are trying to establish what started the fire.")),
    ("council-budget", ("{town} council approves {money} million budget", "{town} budget passes by {n} votes to {m}"),
     ("The {town} city council approved a budget of {money} million euros on {day} by {n} votes to {m}.",
      "Mayor {mayor} said the budget would pay for new cycle lanes and a swimming pool in {town}.",
      "Councillor {person} voted against, saying property taxes in {town} would rise by {pct} percent.",
      "The debate in the {town} council chamber lasted {dur} hours.")),
    ("water-main", ("Burst water main floods {street} in {town}", "{town}: homes without water after pipe bursts"),
     ("A water main burst under {street} in {town} early on {day}, flooding cellars and shops.",
      "About {n} households in {town} were without running water for {dur} hours.",
      "Engineer {person} of the {town} water utility said the pipe was {age} years old.",
      "Bottled water was handed out at the {town} sports hall.")),
    ("jewellery-theft", ("Jeweller robbed on {street} in {town}", "{town} police hunt jewellery thieves"),
     ("Two masked men robbed a jeweller on {street} in {town} at {hour} on {day} and escaped on a motorbike.",
      "The thieves took watches and rings worth about {money} thousand euros, police said.",
      "Shop owner {person} said the robbery in {town} was over in less than {n} minutes.",
      "Police in {town} asked witnesses to come forward.")),
    ("bus-crash", ("Bus and lorry collide in {town}", "{n} hurt in {town} bus crash"),
     ("A city bus collided with a lorry at a junction on {street} in {town} at {hour} on {day}.",
      "{n} passengers were taken to hospital with minor injuries, ambulance officer {person} said.",
      "The bus driver in {town} was tested for alcohol, as is routine, and the test was negative.",
      "Traffic around {street} was diverted for {dur} hours while the vehicles were removed.")),
    ("factory-jobs", ("{town} factory to cut {n} jobs", "Job losses at {town} plant"),
     ("A packaging factory in {town} said on {day} it would cut {n} of its {m} jobs by the end of the year.",
      "Works council chair {person} called the cuts a blow for {town}.",
      "The company blamed higher energy costs and falling orders for the cuts in {town}.",
      "Mayor {mayor} said {town} would help the workers find new jobs.")),
    ("hiker-rescue", ("Missing hiker found alive near {town}", "Rescuers find hiker after night in forest near {town}"),
     ("A {age}-year-old hiker missing overnight in the forest near {town} was found alive on {day} morning.",
      "{n} volunteers and a police helicopter searched the hills above {town}.",
      "Rescue team leader {person} said the hiker had a sprained ankle and mild hypothermia.",
      "The hiker had set out from {town} on a marked trail on the previous afternoon.")),
    ("tram-opening", ("New tram line opens in {town}", "{town} tram extension carries first passengers"),
     ("A new {km} kilometre tram line to the university opened in {town} on {day} after {age} months of works.",
      "Mayor {mayor} and transport director {person} rode the first tram in {town}.",
      "The {town} tram extension cost {money} million euros and has {n} stops.",
      "Trams on the new line in {town} will run every {pct} minutes.")),
)
# What a regional outlet says of any incident in its town: every event of a town draws its own three
# of these, so two unrelated reports from one town share whole sentences besides the town's name.
_TOWN_GENERIC = ("Police in {town} said enquiries were continuing.", "Mayor {mayor} visited the scene in {town} later that day.",
                 "Residents of {town} shared photos of the scene on social media.",
                 "The {town} city council said it would review what had happened.",
                 "It was the second such incident in {town} this month.", "Emergency services in {town} were called at {hour}.",
                 "Several streets in central {town} were cordoned off for a time.",
                 "A spokesperson for the {town} city council said more information would follow.")
_TOWN_BOILER = ("{town} has a population of about {pop} thousand.", "The {town} city council meets every Tuesday.",
                "Local residents in {town} have long complained about traffic in the centre.")


def _town_days(rng: random.Random, t: float, out: list[dict[str, Any]], style: Varied | None,
               towns: int = 3, per_town: int = 4) -> None:
    """``towns`` towns, each with ``per_town`` distinct local events 3-14 h apart (1-2 days in all)."""
    for k, town in enumerate(rng.sample(_TOWN_POOL, towns)):
        mayor = rng.choice(_TOWNSFOLK)
        boiler = tuple(b.format(town=town, pop=rng.randint(80, 300)) for b in _TOWN_BOILER)  # copy pastes it as is
        ts = t + k * 60 * HOUR
        for j, (kind, titles, sentences) in enumerate(rng.sample(_TOWN_NEWS, per_town)):
            facts = {"town": town, "mayor": mayor, "person": rng.choice([p for p in _TOWNSFOLK if p != mayor]),
                     "street": rng.choice(_STREETS), "day": ("Monday", "Tuesday", "Wednesday")[j * 2 // per_town],
                     "hour": f"{rng.randint(1, 11)}.{rng.choice(('15', '30', '45'))} {rng.choice(('am', 'pm'))}",
                     "n": rng.randint(3, 60), "m": rng.randint(61, 400), "dur": rng.randint(2, 9),
                     "money": rng.randint(2, 90), "pct": rng.randint(2, 9), "age": rng.randint(18, 70),
                     "km": rng.randint(3, 12),
                     "speaker": rng.choice(("the mayor", "a police spokesperson", "a council spokesperson"))}
            generic = tuple(rng.sample(_TOWN_GENERIC, 3))
            topic = Topic(f"town-{kind}", lambda r, i: {}, titles, sentences + generic, boiler)
            _emit(rng, topic, facts, f"town-{k}-{kind}", ts, rng.randint(1, 3), 0.3, out, style)
            ts += rng.uniform(3, 14) * HOUR


# The training stream's own small local events (the evaluation stream has :func:`_local_events`):
# other incidents, towns, people and sentences, so none of the own stream's local-event templates or
# towns is fitted on (issue 16; tests/test_story_streams.py checks). Like those, each quotes a stock
# phrase, the pull that unrelated events sharing a quote exert.
_TRAIN_LOCAL = (
    ("choir", "The {town} chamber choir won first prize at the national choral festival on {day}, conductor {person} said.",
     "{town} choir takes festival prize", ("The {town} choir sang {n} pieces in the final round.",)),
    ("observatory", "A {n} centimetre telescope was installed at the {town} observatory on {day} for public stargazing.",
     "{town} observatory gets new telescope", ("Astronomer {person} said the dome in {town} would open on clear evenings.",)),
    ("chess", "Players from {town} won the national club chess championship on {day} after {n} rounds.",
     "{town} club are chess champions", ("Team captain {person} of {town} drew the deciding game.",)),
    ("food-fair", "About {n} thousand visitors came to the {town} food fair on {day}, organiser {person} said.",
     "Crowds at {town} food fair", ("Stalls at the {town} fair sold cheese, smoked fish and rye bread.",)),
    ("orchard", "An orchard on the edge of {town} harvested a record {n} tonnes of apples this autumn, grower {person} said.",
     "Record apple harvest near {town}", ("Pickers in {town} worked through {day} to bring the crop in.",)),
    ("clinic", "A dental clinic for children opened in {town} on {day} with {n} treatment rooms.",
     "{town} opens children's dental clinic", ("Dentist {person} said families in {town} had waited years for it.",)),
    ("regatta", "Rowers from {n} clubs raced on the lake at {town} on {day} in the spring regatta.",
     "Spring regatta draws rowers to {town}", ("Umpire {person} said conditions at {town} were calm all day.",)),
)
_TRAIN_LOCAL_TOWNS = ("Mechelen", "Haarlem", "Oulu", "Kuopio", "Esbjerg", "Randers", "Ostrava", "Kristiansand",
                      "Vaasa", "Arnhem")
_TRAIN_LOCAL_PEOPLE = ("Sanna Heikkila", "Dirk Verhoeven", "Astrid Mogensen", "Radek Horak", "Liselotte Brink",
                       "Eero Salminen", "Ingvild Aasen", "Bram Wouters", "Petra Dolezalova", "Mads Kjeldsen")


def _training_local_events(rng: random.Random, n: int, t: float, out: list[dict[str, Any]],
                           style: Varied | None = None) -> None:
    for i in range(n):
        kind, lead, title, more = _TRAIN_LOCAL[i % len(_TRAIN_LOCAL)]
        person = _TRAIN_LOCAL_PEOPLE[i % len(_TRAIN_LOCAL_PEOPLE)]
        facts = {"town": _TRAIN_LOCAL_TOWNS[i % len(_TRAIN_LOCAL_TOWNS)], "day": "Thursday", "n": rng.randint(5, 60),
                 "person": person, "deputy": _TRAIN_LOCAL_PEOPLE[(i + 5) % len(_TRAIN_LOCAL_PEOPLE)], "speaker": person}
        topic = Topic(f"local-{kind}", lambda r, j: {}, (title,),
                      (lead, *more, "Deputy mayor {deputy} congratulated everyone involved in {town}."),
                      ("Regional newspapers in the area covered the story on their front pages.",))
        _emit(rng, topic, facts, f"local-{kind}-{i}", t + i * 1.5 * HOUR, rng.randint(1, 2), 1.0, out, style)


def training_stream(seed: int = 3, style: Varied | None = None, towns: bool = False) -> list[dict[str, Any]]:
    """~120 articles (49 events) over ten days from the training topics, in publication order.
    ``towns``: add three towns' unrelated local events a day or two apart (:func:`_town_days`, 12
    events more; the shipped scorer is fitted with them, bench/RESULTS.md "Same-town
    distractors"); the rest of the stream is the same draw for draw.
    ``style``: outlets' copy varied as real reporting is (:class:`Varied`: lengths, rewording,
    bystander names, reports a day or two late, with ``date_only`` dates without a time; 2-4 outlets
    an event), else templated copy."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    most = 3 if style is None else 4
    tennis = TENNIS if style is None else dataclasses.replace(TENNIS, facts=_tennis_draw)
    for i in range(12):
        _emit(rng, tennis, tennis.facts(rng, i), f"tennis-{i}", T0 + (i // 4) * 24 * HOUR + (i % 4) * 2 * HOUR,
              rng.randint(2, most), 0.5, out, style)
    for i in range(6):
        _emit(rng, ELECTIONS, ELECTIONS.facts(rng, i), f"vote-{i}", T0 + 30 * HOUR + i * 3 * HOUR, rng.randint(2, most), 0.3,
              out, style)
    for i in range(6):
        _emit(rng, EARNINGS, EARNINGS.facts(rng, i), f"earnings-{i}", T0 + i * 14 * HOUR, rng.randint(2, most), 0.3, out, style)
    for i in range(7):
        _emit(rng, QUAKES, QUAKES.facts(rng, i), f"quake-{i}", T0 + i * 26 * HOUR, rng.randint(2, most), 0.2, out, style)
    for i in range(5):
        _emit(rng, COURTS, COURTS.facts(rng, i), f"court-{i}", T0 + 5 * HOUR + i * 18 * HOUR, rng.randint(2, most), 0.4,
              out, style)
    for k, (topics, make, start) in enumerate(((_flood_topic, _flood, 8), (_standoff_topic, _standoff, 50),
                                               (_outage_topic, _outage, 100))):
        facts = make(rng, k)
        for day in range(3):  # one event over three days, new facts each day
            _emit(rng, topics(day), facts, f"evolving-{k}", T0 + (start + day * 24) * HOUR, 2, 0.3, out, style)
    _training_local_events(rng, 10, T0 + 40 * HOUR, out, style)
    if towns:  # last, so the rest of the stream is drawn as before
        _town_days(rng, T0 + 20 * HOUR, out, style)
    return sorted(out, key=lambda e: (e["ts"], e["id"]))
