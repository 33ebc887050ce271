"""`meterline demo`: a demo electricity utility on SQLite, filled the way a real one is.

The consumer master is generated as a real .xlsx (title row, a few bad rows, a totals
row) and imported through `import_master`, the same path as the CLI and the API, so
the demo shows the importer's report as an operator would see it. The messaging side is
scenario 1: sandbox SMS and WhatsApp channel accounts (the WhatsApp one treats every third
reminded number as not on WhatsApp), the dues reminder route WhatsApp then SMS, a sandbox
payment gateway, and a reminder run to the first defaulters, each reminder carrying its
bill's payment link at the served address: open one, approve it on the sandbox page, and
the bill is paid. Every run starts from an empty database (and a new secret key for the
links), so the demo is repeatable.
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from meterline.domain.enums import ContactKind, Medium, Role
from meterline.ingest.sample_sheet import bad_row_count, write_xlsx
from meterline.ingest.simulator import FleetSimulator, SimSettings, demo_meters
from meterline.services import credit
from meterline.services import payments as pay
from meterline.services import reminders as rem
from meterline.services.channel_accounts import add_channel_account
from meterline.services.fleet import FleetReport, create_fleet
from meterline.services.importer import ImportReport, import_master
from meterline.services.meter_events import IngestReport, ingest_events
from meterline.services.routes import set_route
from meterline.services.security import create_operator
from meterline.services.tenants import create_tenant, get_tenant
from meterline.store.db import make_engine, make_session_factory
from meterline.store.migrate import upgrade
from meterline.store.models import ContactPoint, Message, PaymentLink

log = structlog.get_logger("meterline.demo")

TENANT_SLUG = "demo-electric"
TENANT_NAME = "Aligarh Electricity Office (demo)"
TIMEZONE = "Asia/Kolkata"
USERNAME = "admin"
# A local demo on the operator's own machine: a fixed, printed password is the point.
PASSWORD = "meterline-demo"
SHEET_NAME = "consumer-master.xlsx"
SEED = 2024
DEMO_PRICE_MINOR = 25  # paisa per SMS segment
DEMO_CREDIT_MINOR = 500_00
DEMO_REMINDERS = 25
NOT_ON_WHATSAPP_EVERY = 3  # every third reminded number "is not on WhatsApp" in the sandbox
PUBLIC_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class DemoLink:
    """A reminder's payment link, for the summary to say what to open."""

    account: str
    amount: str
    url: str
    on_whatsapp: bool


@dataclass
class DemoInfo:
    database_url: str
    username: str
    password: str
    tenant_slug: str
    sheet: Path
    consumers: int
    report: ImportReport
    reminders: int = 0
    public_url: str = PUBLIC_URL
    # Signs the payment links; the served app must use the same (cli `demo` does).
    secret_key: str = ""
    links: list[DemoLink] = field(default_factory=list)

    def summary(self) -> str:
        r = self.report
        lines = [
            f"demo tenant {self.tenant_slug!r}: {self.database_url}",
            f"master sheet: {self.sheet} ({self.consumers} consumers"
            f" + {bad_row_count(self.consumers)} deliberately bad rows)",
            f"import: {r.inserted} inserted, {r.updated} updated, {r.rejected} rejected,"
            f" {r.skipped} skipped (totals row)",
        ]
        for e in r.errors[:5]:
            col = f" [{e['column']}]" if e["column"] else ""
            lines.append(f"  row {e['row']}{col}: {e['reason']}")
        if len(r.errors) > 5:
            lines.append(f"  ... and {len(r.errors) - 5} more rejected rows")
        lines.append(
            f"messaging: sandbox WhatsApp and SMS channels, dues reminders routed WhatsApp"
            f" then SMS, {DEMO_CREDIT_MINOR // 100} INR of credit at {DEMO_PRICE_MINOR} paisa"
            " an SMS segment, a sandbox payment gateway"
        )
        lines.append(
            f"reminder run: {self.reminders} dues reminders queued with payment links; every"
            f" {NOT_ON_WHATSAPP_EVERY}rd number is not on WhatsApp and falls back to SMS (sent"
            " by the in-process dispatcher; the demo tenant has no quiet hours; see"
            " /console/reminders, /console/messages and /console/sandbox)"
        )
        if self.links:
            lines.append("pay a bill: open a link, press Pay, then Approve on the sandbox page:")
            for link in self.links:
                how = "WhatsApp" if link.on_whatsapp else "SMS (not on WhatsApp)"
                lines.append(f"  {link.url}  a/c {link.account}, {link.amount}, by {how}")
        lines.append(f"login: {self.username} / {self.password}")
        return "\n".join(lines)


def prepare_demo(
    directory: Path,
    consumers: int = 3000,
    today: date | None = None,
    *,
    public_url: str = PUBLIC_URL,
    secret_key: str | None = None,
) -> DemoInfo:
    """Create (or recreate) the demo database in `directory`, import a generated sheet,
    and queue a dues reminder run whose payment links point at `public_url`."""
    secret_key = secret_key or secrets.token_urlsafe(32)
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    db = directory / "meterline.db"
    for leftover in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        leftover.unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    upgrade(url)

    # "Today" where the utility is, so due dates fall either side of the tenant's today.
    today = today or datetime.now(ZoneInfo(TIMEZONE)).date()
    sheet = write_xlsx(
        directory / SHEET_NAME, consumers, seed=SEED, bad_rows=True, totals=True, today=today
    )

    engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        with factory() as session, session.begin():
            tenant = create_tenant(
                session,
                slug=TENANT_SLUG,
                name=TENANT_NAME,
                country="IN",
                currency="INR",
                timezone=TIMEZONE,
                languages=["hi", "en", "bn", "ru"],
            )
            # No quiet hours in the demo: whoever runs it, at whatever hour, sees the
            # reminders and alerts go out (a real tenant keeps 21:00-08:00 by default).
            tenant.quiet_start = tenant.quiet_end = "00:00"
            create_operator(session, tenant, USERNAME, PASSWORD, Role.admin, language="en")
        report = import_master(
            factory,
            TENANT_SLUG,
            sheet,
            started_by=USERNAME,
            max_bytes=max(sheet.stat().st_size, 100 * 1024 * 1024),
        )
        with factory() as session, session.begin():
            reminders, links = _messaging(session, today, public_url, secret_key)
    finally:
        engine.dispose()
    return DemoInfo(
        database_url=url,
        username=USERNAME,
        password=PASSWORD,
        tenant_slug=TENANT_SLUG,
        sheet=sheet,
        consumers=consumers,
        report=report,
        reminders=reminders,
        public_url=public_url,
        secret_key=secret_key,
        links=links,
    )


def _messaging(
    session: Session, today: date, public_url: str, secret_key: str
) -> tuple[int, list[DemoLink]]:
    """Sandbox channels, the route, credit, a sandbox gateway, and a reminder run to the
    first defaulters with their payment links."""
    tenant = get_tenant(session, TENANT_SLUG)
    targets = rem.select_defaulters(session, tenant.id, rem.ReminderFilter(), today=today)[
        :DEMO_REMINDERS
    ]
    phones = dict(
        session.execute(
            select(ContactPoint.consumer_id, ContactPoint.value)
            .where(
                ContactPoint.tenant_id == tenant.id,
                ContactPoint.consumer_id.in_({t.consumer_id for t in targets}),
                ContactPoint.kind == ContactKind.phone,
            )
            .order_by(ContactPoint.is_primary, ContactPoint.id.desc())  # primary last: kept
        ).all()
    )
    reached = [phones[t.consumer_id] for t in targets if t.consumer_id in phones]
    not_on_whatsapp = reached[NOT_ON_WHATSAPP_EVERY - 1 :: NOT_ON_WHATSAPP_EVERY]
    add_channel_account(
        session,
        tenant.id,
        name="sandbox-sms",
        type_name="sandbox",
        config={},
        rate_per_second=20,
    )
    add_channel_account(
        session,
        tenant.id,
        name="sandbox-whatsapp",
        type_name="sandbox",
        medium=Medium.whatsapp,
        config={"unreachable": not_on_whatsapp},
        rate_per_second=20,
    )
    set_route(session, tenant.id, rem.KIND, ["whatsapp", "sms"], by="demo")
    credit.set_pricing(session, tenant.id, sms_price_minor=DEMO_PRICE_MINOR)
    credit.top_up(session, tenant.id, DEMO_CREDIT_MINOR, by="demo", note="demo credit")
    # A literal secret is fine for the sandbox: it only signs the demo's Approve button.
    pay.add_gateway(
        session,
        tenant.id,
        name="sandbox",
        type_name="sandbox",
        config={"webhook_secret": secrets.token_urlsafe(24)},
    )
    run = rem.send_run(
        session,
        tenant,
        rem.ReminderFilter(),
        now=datetime.now(UTC),
        today=today,
        key=pay.link_key(secret_key),
        public_url=public_url,
        created_by=USERNAME,
        limit=DEMO_REMINDERS,
    )
    return run.queued, _sample_links(session, tenant.id, set(not_on_whatsapp))


def _sample_links(session: Session, tenant_id: int, not_on_whatsapp: set[str]) -> list[DemoLink]:
    """One link whose reminder goes by WhatsApp and one that falls back to SMS."""
    rows = session.execute(
        select(Message.to_address, Message.data)
        .where(
            Message.tenant_id == tenant_id,
            Message.kind == rem.KIND,
            Message.to_address.is_not(None),
            Message.bill_id.is_not(None),
        )
        .order_by(Message.id)
    ).all()
    picked: dict[bool, DemoLink] = {}
    for to, data in rows:
        on_whatsapp = to not in not_on_whatsapp
        url = str((data or {}).get("pay_url", ""))
        if on_whatsapp in picked or "/p/" not in url:
            continue
        code = url.rsplit("/p/", 1)[1]
        link = session.scalars(select(PaymentLink).where(PaymentLink.code == code)).one()
        amount = f"{link.amount_minor // 100:,}.{link.amount_minor % 100:02d} {link.currency}"
        picked[on_whatsapp] = DemoLink(str(data["account"]), amount, url, on_whatsapp)
    return [picked[k] for k in (True, False) if k in picked]


# Live meters: a prepaid fleet of the demo tenant reporting gently while someone watches.
DEMO_FLEET = 300
DEMO_FLEET_PREFIX = "DM"
DEMO_SIM_RATE = 4.0  # events per second
# Consumption runs this many times faster than real, so balances cross the low and zero
# thresholds within minutes; event times stay real (the rules refuse future times).
DEMO_SIM_SPEED = 150.0


def prepare_fleet(database_url: str, meters: int = DEMO_FLEET) -> FleetReport:
    """The demo tenant's prepaid fleet (consumers, accounts with sanctioned loads, meters)."""
    engine = make_engine(database_url)
    try:
        return create_fleet(
            make_session_factory(engine), TENANT_SLUG, meters, prefix=DEMO_FLEET_PREFIX
        )
    finally:
        engine.dispose()


class LiveMeters:
    """The fleet simulator feeding the events service directly, once a second, in a thread:
    alerts open and close in the console (and go out on the sandbox channel) as it runs."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        meters: int = DEMO_FLEET,
        *,
        rate: float = DEMO_SIM_RATE,
        speed: float = DEMO_SIM_SPEED,
        seed: int = SEED,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.rate = rate
        self.clock = clock
        self.simulator = FleetSimulator(
            demo_meters(meters, prefix=DEMO_FLEET_PREFIX, tenant=TENANT_SLUG),
            random.Random(seed),
            # A lively demo: tamper and overload show up within minutes, not days.
            SimSettings(
                consumption_scale=speed,
                tamper_probability=0.01,
                overload_probability=0.03,
                source="demo-simulator",
            ),
        )
        self.totals = IngestReport()
        self._carry = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> IngestReport:
        """One second's worth of events into the events service."""
        self._carry += self.rate
        n, self._carry = int(self._carry), self._carry - int(self._carry)
        if n == 0:
            return IngestReport()
        now = self.clock()
        report = ingest_events(
            self.sessions, TENANT_SLUG, self.simulator.take(now, n), source="demo", now=now
        )
        self.totals.add(report)
        return report

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.tick()
            except Exception:  # a locked database for a moment: the next second tries again
                log.exception("demo simulator tick failed")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-meters", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
