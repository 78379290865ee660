"""Issues on the table: raising, linking, discussing, positions, statements."""

from __future__ import annotations

from domain import commands as c
from domain import errors
from domain import events as e
from domain.context import Context, rule


@rule(c.RaiseIssue)
def issue_raised(cmd: c.RaiseIssue, ctx: Context) -> e.IssueRaised:
    if cmd.issue in ctx.known_issues:
        raise errors.IssueAlreadyRaised(f"issue {cmd.issue!r} has already been raised", "/issue")
    ctx.require_party(cmd.raised_by, "/raised_by")
    return e.IssueRaised(issue=cmd.issue, title=cmd.title, category=cmd.category, raised_by=cmd.raised_by)


@rule(c.LinkIssues)
def issues_linked(cmd: c.LinkIssues, ctx: Context) -> e.IssuesLinked:
    if cmd.related_issue == cmd.issue:
        raise errors.SelfLink("an issue cannot be linked to itself", "/related_issue")
    ctx.require_issue(cmd.related_issue, "/related_issue")
    if ctx.on_issue.links.get(cmd.related_issue) == cmd.relation:
        raise errors.LinkExists(f"{cmd.issue!r} is already {cmd.relation} {cmd.related_issue!r}", "/relation")
    return e.IssuesLinked(issue=cmd.issue, related_issue=cmd.related_issue, relation=cmd.relation)


@rule(c.DiscussIssue)
def issue_discussed(cmd: c.DiscussIssue, ctx: Context) -> e.IssueDiscussed:
    if cmd.round_id is not None and cmd.round_id not in ctx.negotiation.rounds:
        raise errors.UnknownRound(f"round {cmd.round_id!r} does not exist", "/round_id")
    return e.IssueDiscussed(issue=cmd.issue, round_id=cmd.round_id, summary=cmd.summary, assessment=cmd.assessment)


@rule(c.StatePosition)
def position_stated(cmd: c.StatePosition, ctx: Context) -> e.PositionStated:
    ctx.require_party(cmd.party, "/party")
    return e.PositionStated(
        issue=cmd.issue, party=cmd.party, stance=cmd.stance, summary=cmd.summary, conditions=list(cmd.conditions)
    )


@rule(c.DropIssue)
def issue_dropped(cmd: c.DropIssue, ctx: Context) -> e.IssueDropped:
    if ctx.on_issue.dropped:
        raise errors.IssueDropped(f"issue {cmd.issue!r} was already dropped on {ctx.on_issue.dropped_on}", "/issue")
    return e.IssueDropped(issue=cmd.issue, reason=cmd.reason)


@rule(c.ReopenIssue)
def issue_reopened(cmd: c.ReopenIssue, ctx: Context) -> e.IssueReopened:
    if not ctx.on_issue.dropped:
        raise errors.IssueNotDropped(f"issue {cmd.issue!r} is not dropped", "/issue")
    return e.IssueReopened(issue=cmd.issue, reason=cmd.reason)


@rule(c.MakeStatement)
def statement_made(cmd: c.MakeStatement, ctx: Context) -> e.StatementMade:
    ctx.require_party(cmd.party, "/party")
    return e.StatementMade(
        speaker=cmd.speaker, summary=cmd.summary, party=cmd.party, issue=cmd.issue, assessment=cmd.assessment
    )
