"""Regenerate the committed PDF and DOCX sample documents of the Skylark knowledge base.

Only needed to rebuild the binary files under ``samples/knowledge/`` after editing their text
below; Flywheel itself never runs this script. It needs two extra packages that are not project
dependencies::

    pip install fpdf2 python-docx

Usage (from the repository root)::

    python samples/tools/make_binary_samples.py            # writes the .pdf and .docx files
    python samples/tools/make_binary_samples.py --check    # also prints the text of each PDF page
                                                          # (needs pypdf)

Each document is a list of blocks: headings, paragraphs, bulleted and numbered lists, tables and
(PDF only) explicit page breaks. Page breaks are placed so that every section lands on a known
page; the script fails if a PDF section overflows onto an extra page, because
``knowledge/manifest.yaml`` records which text is on which page.

Skylark Regional Airways is a fictional airline; none of this is for operational use.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

KNOWLEDGE = Path(__file__).resolve().parents[1] / "knowledge"
FIXED_DATE = dt.datetime(2025, 10, 15, 12, 0, 0, tzinfo=dt.UTC)
FOOTNOTE = (
    "Skylark Regional Airways is a fictional airline created as sample data for Flywheel. Not for operational use."
)


# --- document model -----------------------------------------------------------------------------


@dataclass
class Doc:
    path: str  # relative to samples/knowledge
    title: str
    subtitle: str
    blocks: list[tuple] = field(default_factory=list)

    def h1(self, text: str) -> Doc:
        self.blocks.append(("h1", text))
        return self

    def h2(self, text: str) -> Doc:
        self.blocks.append(("h2", text))
        return self

    def p(self, text: str) -> Doc:
        self.blocks.append(("p", text))
        return self

    def ul(self, *items: str) -> Doc:
        self.blocks.append(("ul", list(items)))
        return self

    def ol(self, *items: str) -> Doc:
        self.blocks.append(("ol", list(items)))
        return self

    def table(self, header: list[str], rows: list[list[str]], widths: list[int] | None = None) -> Doc:
        self.blocks.append(("table", header, rows, widths))
        return self

    def page_break(self) -> Doc:
        self.blocks.append(("pagebreak",))
        return self


# --- PDF documents ------------------------------------------------------------------------------


def customer_service_plan() -> Doc:
    d = Doc(
        "public/customer-service-plan.pdf",
        "Skylark Regional Airways - Customer Service Plan",
        "Document SK-PUB-006, revision 5, effective 2025-07-01. Published for all customers.",
    )
    d.h1("Introduction")
    d.p(
        "This Customer Service Plan sets out what every Skylark Regional Airways customer can expect from us "
        "before, during and after a trip. It applies to all flights operated by Skylark (airline code SK) on "
        "the ATR 72-600 and the Embraer E175. Where this plan promises more than the law requires, the plan "
        "applies. Our employees are trained on this plan and can explain it at every airport we serve."
    )
    d.h1("1. Offering the lowest fare")
    d.p(
        "Our website, app and Customer Care agents show the lowest fare available for the date, flight and "
        "fare family you ask about. If you book by phone, the agent will tell you when a lower fare is "
        "available on the website and will not charge a booking fee in that case."
    )
    d.ul(
        "Fares are shown with all mandatory taxes and fees included.",
        "Optional fees (checked bags, seat selection, pets, unaccompanied minors) are shown before you pay.",
        "You may hold a reservation at the quoted fare for 24 hours without payment, or cancel within 24 "
        "hours of purchase for a full refund, when you book at least 7 days before departure.",
    )
    d.h1("2. Notifying you of delays, cancellations and diversions")
    d.p(
        "We notify you of any delay of 30 minutes or more, any cancellation and any diversion by app "
        "notification, text message and e-mail within 30 minutes of our Operations Control becoming aware of "
        "it. At the airport, gate agents make an announcement at least every 20 minutes during a delay. We will "
        "tell you the cause of the delay when we know it."
    )
    d.p(
        "When a delay or cancellation is caused by something within our control, such as an aircraft "
        "maintenance issue or a crew shortage, we provide meal vouchers, travel credits and, if you must stay "
        "overnight, a hotel room and transport. Weather, air traffic control and security events are outside "
        "our control; in those cases we rebook you free of charge and offer reduced hotel rates."
    )
    d.page_break()
    d.h1("3. Delivering your baggage on time")
    d.p(
        "We make every reasonable effort to deliver checked bags on the same flight as you. If your bag does "
        "not arrive, report it to the Skylark baggage office or the arrival gate agent before you leave the "
        "airport. We will give you a file reference, trace the bag and deliver it to your address free of "
        "charge."
    )
    d.ul(
        "If your checked bag is delayed by more than 12 hours, we refund the fee you paid for that bag.",
        "We reimburse reasonable interim expenses while your bag is delayed, such as toiletries and a change "
        "of clothes.",
        "Damage to a bag must be reported within 24 hours of arrival.",
        "Our liability for lost, damaged or delayed baggage is limited as permitted by US federal rules; the "
        "limit is published on our website and updated every year.",
    )
    d.h1("4. Refunds")
    d.p(
        "Refunds are made to the original form of payment within 7 business days for credit and debit card "
        "purchases and within 20 calendar days for cash and cheque purchases. You are entitled to a refund, "
        "whatever fare you bought, if we cancel your flight or make a significant change to it and you choose "
        "not to travel. A significant change includes a departure or arrival time changed by 3 hours or more."
    )
    d.h1("5. Tarmac delays")
    d.ul(
        "We will not keep you on board an aircraft on the tarmac for more than 3 hours without the "
        "opportunity to leave the aircraft, unless the captain decides it is unsafe or air traffic control "
        "advises otherwise.",
        "After 2 hours on the tarmac we provide drinking water and a snack, and lavatories remain available.",
        "We update you every 30 minutes on the reason for the delay and what we are doing about it.",
    )
    d.page_break()
    d.h1("6. Passengers with disabilities")
    d.p(
        "We provide wheelchair assistance at every airport we serve, from the curb to the aircraft seat and "
        "from the aircraft to the curb or to your connecting flight. Our ATR 72-600 aircraft are boarded by "
        "stairs; at every station we have a lift device or a boarding chair so that customers who cannot climb "
        "stairs can board safely. Assistive devices are carried free of charge and do not count toward the "
        "baggage allowance."
    )
    d.p(
        "Please tell us about your needs when you book, or at least 48 hours before departure, so that the "
        "right equipment is ready. A Complaints Resolution Official (CRO) is available at every airport during "
        "our hours of operation to resolve any disability-related issue on the spot."
    )
    d.h1("7. Unaccompanied minors")
    d.p(
        "Children aged 5 to 14 travelling without an adult must use our unaccompanied minor service, which is "
        "available on nonstop flights only. The fee is 150 USD each way. A Skylark employee supervises the "
        "child from check-in until the child is handed over to the adult named on the booking, whose identity "
        "is checked."
    )
    d.h1("8. Overbooking")
    d.p(
        "Like most airlines, Skylark sometimes sells more seats than are available on a flight. Before any "
        "customer is denied boarding involuntarily, we ask for volunteers and offer travel credits, starting at "
        "200 USD. Customers who are denied boarding involuntarily receive a written statement of their rights "
        "and the compensation required by US federal rules, paid the same day."
    )
    d.table(
        ["Our commitment", "Standard"],
        [
            ["Delay notification", "Within 30 minutes of our becoming aware"],
            ["Card refunds", "Within 7 business days"],
            ["Cash or cheque refunds", "Within 20 calendar days"],
            ["Delayed bag fee refund", "Bag more than 12 hours late"],
            ["Tarmac delay, food and water", "After 2 hours"],
            ["Tarmac delay, deplaning", "Before 3 hours"],
            ["Damage report deadline", "24 hours after arrival"],
            ["Complaint acknowledgement", "Within 30 days"],
        ],
        [70, 100],
    )
    d.page_break()
    d.h1("9. Complaints and how to contact us")
    d.p(
        "You can contact Customer Care at 1-800-555-0175, from 05:00 to 23:00 Mountain Time every day, or by "
        "e-mail at care@skylark-air.example. Written complaints can be sent to Customer Relations, Skylark "
        "Regional Airways, 1450 Hangar Loop, Boise, Idaho. We acknowledge every written complaint within 30 "
        "days and send a full answer within 60 days."
    )
    d.h1("10. Training and review")
    d.p(
        "Every customer-facing employee completes training on this plan when hired and every year afterwards. "
        "The plan is reviewed each year by the Director of Airports and Customer Service, and the current "
        "version is always available on our website and at every ticket counter."
    )
    d.h1("11. Our people")
    d.p(
        "Skylark is a small airline and most of our customers live in the communities we serve. If something "
        "goes wrong, the agent in front of you is empowered to fix it on the spot within clear limits, and to "
        "call a supervisor when the limits are not enough. Tell us what happened; we would rather hear it from "
        "you than read it in a review."
    )
    return d


def propeller_inspection() -> Doc:
    d = Doc(
        "mechanics/propeller-inspection-568f.pdf",
        "ATR 72-600 Propeller Inspection and Damage Limits",
        "Skylark Maintenance Manual supplement SMM-61-10, revision 6, effective 2025-03-03. "
        "ATA 61 - Propellers. Applies to N401SK to N410SK.",
    )
    d.h1("1. Purpose and applicability")
    d.p(
        "This supplement gives the Skylark procedures, intervals and acceptance limits for the inspection of "
        "the six-blade composite propellers fitted to both PW127M engines of the ATR 72-600 fleet. It "
        "complements the propeller component maintenance manual; the more restrictive limit always applies. "
        "Propeller work that goes beyond the limits in section 6 is done only by the Boise propeller shop."
    )
    d.h1("2. Description")
    d.p(
        "Each propeller has six composite blades on a steel hub, a diameter of 3.93 m, and turns clockwise "
        "seen from behind. The blades have a nickel erosion sheath on the outboard leading edge and an "
        "electrically heated de-icing blanket bonded under the leading edge of the inboard half. Power for "
        "the blankets reaches the rotating propeller through a slip ring on the propeller and a brush block "
        "(P/N SKP-BBK-61-0025) mounted on the engine reduction gearbox."
    )
    d.table(
        ["Item", "Part number", "Qty per propeller"],
        [
            ["Composite blade", "SKP-BLD-61-0568", "6"],
            ["Hub retention bolt (standard)", "SKP-BLT-61-0092", "12"],
            ["De-icing brush block", "SKP-BBK-61-0025", "1"],
            ["Propeller electronic control", "SKP-PEC-61-0210", "1 per engine"],
        ],
        [80, 55, 35],
    )
    d.h1("3. Inspection intervals")
    d.table(
        ["Inspection", "Interval", "Section"],
        [
            ["Walk-around visual", "Every flight (by the pilot) and every daily check", "4"],
            ["Detailed visual and tactile", "Every A-check (600 FH)", "5"],
            ["De-icing system resistance check", "Every A-check and after any blade change", "7"],
            ["Dynamic balance check", "After any blade change, or vibration report", "9"],
            ["Blade overhaul", "10,000 FH or 6 years", "Shop"],
        ],
        [60, 80, 30],
    )
    d.page_break()
    d.h1("4. Walk-around and daily check")
    d.ol(
        "Install the propeller ground lock. On engine 2, confirm that hotel mode is off and the propeller "
        "brake is not holding a running engine.",
        "Look at each blade from root to tip on both faces. Use a flashlight in low light.",
        "Look for: cracks, nicks or dents on the leading edge, lifting or missing erosion sheath, "
        "delamination (a dull area that sounds different when tapped), lightning strike marks, and "
        "grease or oil streaks from the hub.",
        "Move each blade by hand at the tip in the fore-and-aft direction. A slight movement (up to 3 mm) "
        "is normal; a knock or a click is not.",
        "Check the spinner for cracks around the attach screws and for missing screws.",
        "Record the check. Report every finding to the MCC before the next flight.",
    )
    d.h1("5. Detailed inspection at the A-check")
    d.ol(
        "Clean the blades with water and mild soap; dry them. Do not use solvents on the de-icing blankets.",
        "Carry out the walk-around check items.",
        "Coin-tap the blade surface along the leading edge and the de-icing blanket area with the tap "
        "hammer SKT-TAP-61-01, at 25 mm spacing. Mark any area that sounds dull and measure it.",
        "Measure leading edge erosion with the erosion gauge SKT-GAU-61-03 at stations 30, 60 and 90 "
        "percent of the blade radius.",
        "Inspect the erosion sheath bond line for lifting with a feeler gauge of 0.1 mm.",
        "Inspect the slip ring and the brush block (section 7).",
        "Check the hub retention bolts for the torque stripe. A broken stripe requires a torque check per "
        "bulletin SK-EB-2024-11.",
    )
    d.page_break()
    d.h1("6. Damage limits")
    d.table(
        ["Damage", "Serviceable as is", "Repair by mechanic", "Send to shop"],
        [
            [
                "Nick or dent, leading edge sheath",
                "Up to 0.5 mm deep",
                "Up to 1.5 mm deep: blend (8.1)",
                "Deeper than 1.5 mm",
            ],
            ["Erosion of sheath", "Sheath intact", "-", "Sheath worn through at any point"],
            ["Sheath lifting", "None", "Up to 10 mm at the sheath edge: seal (8.2)", "Longer than 10 mm"],
            ["Composite surface scratch", "Paint only", "Into the first ply: coat (8.3)", "Fibres cut or broken"],
            ["Delamination (tap test)", "None", "-", "Any size"],
            ["Crack", "None", "-", "Any crack in the blade"],
            ["Lightning strike", "-", "-", "Any mark; also inspect the hub"],
        ],
        [45, 35, 50, 40],
    )
    d.h2("6.1 De-icing heater blanket")
    d.p(
        "Blanket damage is judged separately from the blade structure. A cut in the blanket cover that does "
        "not expose the heating element may be sealed with a coat of edge sealer by a mechanic. An exposed "
        "element, a blister or any delamination of the blanket makes the blade unserviceable: the blade is "
        "removed and sent to the Boise propeller shop, which holds six spare blades."
    )
    d.p(
        "Any blade that shows heater blanket delamination on N402SK must be tagged with red quarantine tag "
        "QT-HERON-5521 and shipped to the Boise propeller shop."
    )
    d.p(
        "The N402SK instruction exists because two of its blades came from a repair batch that the blade "
        "repair station has asked to examine. The quarantine tag keeps those blades out of the normal "
        "exchange pool until the examination is complete."
    )
    d.h2("6.2 Foreign object damage")
    d.p(
        "Gravel damage is most common at Sun Valley, Elko and Lewiston in spring, when runways are sanded. "
        "After a flight from a sanded runway, inspect the lower blades on both propellers at the next stop "
        "with a mechanic, even if the crew did not report anything."
    )
    d.page_break()
    d.h1("7. De-icing system check")
    d.ol(
        "With the brush block cover removed, check each carbon brush for free movement and length. Replace "
        "the brush block when any brush is shorter than 6 mm.",
        "Inspect the slip ring tracks for scoring, burning and contamination. Clean with a lint-free cloth "
        "and isopropyl alcohol only.",
        "Measure the resistance of each blade heater circuit at the slip ring with the milliohm meter "
        "SKT-MTR-61-02. Acceptable value: 12.5 to 14.5 ohms per blade at 20 degrees C.",
        "The six readings on one propeller must not differ from each other by more than 1.0 ohm.",
        "Measure insulation resistance between each heater circuit and the hub at 500 V DC: at least 2 megohms.",
        "Refit the brush block cover; torque the brush block attach screws to 25 in-lb.",
    )
    d.h1("8. Repairs by line mechanics")
    d.h2("8.1 Blending nicks in the sheath")
    d.p(
        "Blend with a fine file and 320 grit paper to a smooth, shallow dish at least 10 times as long as it "
        "is deep. Maximum blend depth 1.5 mm, maximum two blends per blade, at least 50 mm apart. Measure "
        "the final depth and record it with the station (percentage of radius)."
    )
    d.h2("8.2 Sealing sheath edges")
    d.p(
        "Clean the lifted edge, inject sealant SKP-SEA-0088 with the syringe from kit SKP-KIT-61-0200, clamp "
        "lightly for the cure time on the sealant label, and remove excess. A sealed edge is re-inspected at "
        "every daily check for the next 10 days."
    )
    d.h2("8.3 Protective coating")
    d.p(
        "Scratches into the first ply are coated with the blade erosion coating from kit SKP-KIT-61-0200 in "
        "two thin layers. Do not sand through the first ply."
    )
    d.page_break()
    d.h1("9. Dynamic balance")
    d.p(
        "A dynamic balance check is required after any blade change, after the fitting of a spinner, and "
        "after any pilot report of vibration that changes with propeller speed. The check is done with the "
        "vibration analyser kit SKT-VIB-61-01, with both engines running at 82 percent NP and the aircraft "
        "facing into the wind; a check made in hotel mode is not valid."
    )
    d.table(
        ["Vibration level (inches per second)", "Action"],
        [
            ["Up to 0.20 ips", "Acceptable. Record the value."],
            ["0.20 to 0.40 ips", "Balance the propeller using the analyser solution; re-check."],
            ["Above 0.40 ips", "Do not dispatch. Inspect blades, hub bolts and spinner; contact MCC."],
        ],
        [70, 100],
    )
    d.h1("10. Records")
    d.ul(
        "Record all findings in SkyTrak against the propeller serial number, not only against the aircraft.",
        "Blade blends: record depth, length and radial station.",
        "Removed blades: attach a serviceable or unserviceable tag with the reason and the flight hours.",
        "Balance checks: attach the analyser print-out to the work order.",
    )
    d.h1("11. References")
    d.ul(
        "Engineering Bulletin SK-EB-2024-11, propeller hub retention bolts.",
        "Skylark torque table, item TQ-014 (spinner screws) and TQ-016 (brush block).",
        "Rotable parts list, propeller section.",
    )
    return d


def cold_weather_ops() -> Doc:
    d = Doc(
        "pilots/fon-cold-weather-ops.pdf",
        "FON 25-11 Winter Operations 2025/26",
        "Skylark Regional Airways Flight Operations Notice FON 25-11, effective 2025-11-01 to 2026-03-31. "
        "Applies to all pilots, ATR 72-600 and E175.",
    )
    d.h1("1. Purpose")
    d.p(
        "This notice collects the Skylark winter procedures for the 2025/26 season in one place: the clean "
        "aircraft concept, de-icing and anti-icing, holdover times, station-specific instructions, cold "
        "temperature limits, contaminated runways and flight in icing conditions. It does not replace the "
        "aircraft flight manuals or the QRH. The winter season at Skylark runs from 1 November to 31 March, "
        "but the procedures apply whenever the conditions exist."
    )
    d.h1("2. Clean aircraft concept")
    d.p(
        "No Skylark aircraft may take off with frost, ice, snow or slush adhering to the wings, tail, control "
        "surfaces, propellers or engine inlets. The only exceptions are those listed in service letter "
        "SK-SL-019: frost up to 3 mm on the underside of the wing in the fuel tank area, and thin frost on the "
        "fuselage through which the markings can be read."
    )
    d.h1("3. Responsibilities")
    d.ul(
        "The captain decides whether de-icing is needed and is responsible for the final check that the "
        "aircraft is clean.",
        "The de-icing crew chief is responsible for the correct application and for the post-de-icing check; "
        "the crew chief reports the anti-icing code to the flight deck.",
        "The dispatcher adds de-icing taxi fuel (see the fuel policy) and warns crews of freezing precipitation.",
        "A crew member who sees contamination at any time before take-off tells the captain at once. Flight "
        "attendants report snow or ice seen on the wings from the cabin; this is a permitted call during the "
        "sterile period.",
    )
    d.page_break()
    d.h1("4. De-icing and anti-icing")
    d.h2("4.1 Fluids")
    d.table(
        ["Fluid", "Use at Skylark", "Colour"],
        [
            ["Type I (heated, diluted)", "De-icing; frost removal; all stations", "Orange"],
            ["Type IV (undiluted)", "Anti-icing in active precipitation; BOI, GEG, RNO only", "Green"],
        ],
        [55, 85, 30],
    )
    d.p(
        "Type II and Type III fluids are not used at Skylark stations. Type IV on the ATR 72-600 requires a "
        "rotation speed check: the ATR is certified with Type IV only when the take-off is flown with the "
        "speeds from the performance application that include the fluid correction."
    )
    d.h2("4.2 Aircraft configuration during de-icing")
    d.table(
        ["Item", "ATR 72-600", "E175"],
        [
            [
                "Engines",
                "Engine 1 off; engine 2 in hotel mode allowed for Type I only",
                "Both engines at idle allowed, or APU only",
            ],
            ["Bleed air / packs", "Bleed off, packs off", "APU bleed off, packs off"],
            ["Propeller brake", "ON (hotel mode) or both engines shut down", "-"],
            ["Flaps", "Retracted", "Retracted"],
            ["Doors", "Closed", "Closed"],
        ],
        [35, 70, 65],
    )
    d.h2("4.3 Communication with the de-icing crew")
    d.p(
        "Before spraying, the crew chief contacts the flight deck and receives the configuration "
        'confirmation: "Configuration confirmed, ready for de-icing." After the treatment the crew chief '
        'reports the anti-icing code, for example "Type IV, 100 percent, start time 1432, post-de-icing check '
        'completed". The holdover time starts at the start time of the final step, not at the end of the '
        "treatment."
    )
    d.page_break()
    d.h1("5. Holdover times")
    d.p(
        "Use the current FAA holdover time tables in the EFB for all decisions. The table below gives the "
        "Skylark planning values used by dispatchers and for briefing only; they are deliberately "
        "conservative and must not be used to decide whether the aircraft may take off."
    )
    d.table(
        ["Condition at -3 to -14 degrees C", "Type I planning HOT", "Type IV planning HOT"],
        [
            ["Frost", "35 minutes", "4 hours"],
            ["Light snow", "8 minutes", "45 minutes"],
            ["Moderate snow", "4 minutes", "25 minutes"],
            ["Freezing drizzle", "5 minutes", "20 minutes"],
            ["Light freezing rain", "2 minutes", "10 minutes"],
        ],
        [70, 50, 50],
    )
    d.h1("6. Pre-take-off contamination check")
    d.ul(
        "When the holdover time has been exceeded, a pre-take-off contamination check of the wing upper "
        "surface is required within 5 minutes before take-off. On the ATR the check is done from the cabin "
        "by a pilot or a flight attendant through the windows at rows 6 to 8; on the E175 from the cabin "
        "windows at rows 10 to 12.",
        "If any contamination is seen, or the surface cannot be seen clearly, return for a new treatment.",
        "In freezing rain heavier than light, Skylark does not take off: there is no holdover time.",
    )
    d.page_break()
    d.h1("7. Station-specific instructions")
    d.h2("7.1 Spokane (GEG)")
    d.p(
        "All de-icing at Spokane takes place on the central de-icing pad east of the terminal. Expect a "
        "queue of 10 to 25 minutes in the morning bank; the winter taxi fuel at GEG includes it. Each aircraft "
        "is de-iced by two trucks at once, one per side."
    )
    d.p(
        "At Spokane, the de-icing pad coordinator must be called on company frequency 131.675 and given the "
        "authorization phrase FROST-LANTERN-39 before any Type IV application on an ATR."
    )
    d.h2("7.2 Boise (BOI)")
    d.p(
        "De-icing at Boise is done at the gate for the ATR and on the remote pad at the west end of the apron "
        'for the E175. The Boise ramp controller assigns the order; call "Skylark ramp" when ready.'
    )
    d.h2("7.3 Reno (RNO)")
    d.p(
        "Reno rarely needs Type IV, but frost on the E175 after a night in the open is common in December and "
        "January. The Reno station has one de-icing truck; a second is borrowed from the airport authority "
        "on request, with 30 minutes' notice."
    )
    d.h2("7.4 Sun Valley (SUN)")
    d.p(
        "Only Type I is available at Sun Valley. In active snowfall, if the holdover time cannot be met, the "
        "flight is delayed or cancelled; the crew must not take off with an exceeded holdover time from SUN "
        "because of the terrain on departure."
    )
    d.h1("8. Cold temperature limits")
    d.table(
        ["Item", "ATR 72-600", "E175"],
        [
            ["Minimum OAT for engine start without preheat", "-25 degrees C", "-40 degrees C"],
            ["Engine preheat required", "Below -25 degrees C after more than 4 hours parked", "Not required"],
            [
                "Cold temperature altitude corrections",
                "Below -10 degrees C at the airport",
                "Below -10 degrees C at the airport",
            ],
        ],
        [70, 50, 50],
    )
    d.page_break()
    d.h1("9. Contaminated runways")
    d.p(
        "Runway condition codes (RwyCC) are taken from the field condition report. Skylark crosswind limits, "
        "including gusts, are below."
    )
    d.table(
        ["Runway condition code", "ATR 72-600 max crosswind", "E175 max crosswind"],
        [
            ["6 (dry)", "35 knots", "30 knots"],
            ["5 (wet, up to 3 mm water; frost)", "30 knots", "28 knots"],
            ["4 (compacted snow at -15 degrees C or colder)", "22 knots", "25 knots"],
            ["3 (wet ice excepted; dry or wet snow over compacted snow)", "18 knots", "20 knots"],
            ["2 (standing water, slush more than 3 mm)", "12 knots", "15 knots"],
            ["1 (ice)", "Take-off and landing not permitted", "Take-off and landing not permitted"],
            ["0 (wet ice, water on compacted snow)", "Not permitted", "Not permitted"],
        ],
        [80, 45, 45],
    )
    d.h1("10. Flight in icing conditions")
    d.ul(
        "ATR 72-600: when ice accretion is seen or the ICING light comes on, select airframe de-icing ON "
        "and keep it on until the aircraft is clear of ice. Maintain at least the icing minimum speed shown "
        "by the red and amber band on the speed tape.",
        "ATR 72-600 severe icing: ice on the side windows, or an unexplained drop in speed, is a sign of "
        "severe icing. Leave the conditions at once, request a change of level, and do not use the autopilot "
        "for more than a short time.",
        "E175: the ice detection system switches wing and engine anti-ice automatically in the AUTO position. "
        "Use ON only when the QRH calls for it.",
        "After flight in icing, expect residual ice on the ATR tail on the ground at the next stop; report "
        "it to the mechanic.",
    )
    d.h1("11. Questions")
    d.p("Questions about this notice go to the Chief Pilot's office or the fleet technical pilot of each type.")
    return d


def baggage_claims_handbook() -> Doc:
    d = Doc(
        "customer-support/baggage-claims-handbook.pdf",
        "Baggage Services Handbook",
        "Skylark Customer Care procedure CSP-07, revision 10, effective 2025-05-20. For baggage service "
        "agents, airport agents and Customer Care.",
    )
    d.h1("1. Scope")
    d.p(
        "This handbook tells agents how to handle checked bags that are delayed, damaged, pilfered or lost, "
        "how much they may pay on the spot, and how to record each case in BagLink, the baggage tracing "
        "system. It applies at all Skylark stations. The customer-facing summary is in the Customer Service "
        "Plan (SK-PUB-006)."
    )
    d.h1("2. Types of irregularity")
    d.table(
        ["Type", "Definition"],
        [
            ["Delayed", "The bag did not arrive on the customer's flight but is expected to be found."],
            ["Damaged", "The bag or its contents arrived broken, torn, crushed or wet."],
            ["Pilfered", "Items are missing from a bag that arrived."],
            ["Lost", "A delayed bag not found after 21 days of tracing, or declared lost earlier by Baggage Central."],
        ],
        [30, 140],
    )
    d.h1("3. Reporting deadlines for customers")
    d.table(
        ["Irregularity", "Customer must report", "Where"],
        [
            [
                "Delayed bag",
                "Before leaving the airport, or within 24 hours by phone",
                "Baggage office, arrival gate or Customer Care",
            ],
            ["Damaged bag", "Within 24 hours of arrival", "Baggage office or Customer Care"],
            ["Pilfered items", "Within 24 hours of receiving the bag", "Customer Care"],
            ["Written claim for a lost bag", "Within 45 days of the flight", "Online claim form"],
        ],
        [40, 70, 60],
    )
    d.page_break()
    d.h1("4. Delayed baggage")
    d.h2("4.1 Creating the file")
    d.ol(
        "Ask for the bag tag receipt and the boarding pass. Check the tag number in BagLink; often the bag "
        "is already located on another flight.",
        "Create a property irregularity report (PIR) in BagLink. The file reference has the format station "
        "code + SK + five digits, for example BOISK12345.",
        "Record a precise description of the bag (colour, type, brand, distinguishing marks) and of two or "
        "three contents items that would identify it.",
        "Record the delivery address and a phone number valid for the next 5 days.",
        "Give the customer the file reference and the Customer Care phone number 1-800-555-0175.",
    )
    d.h2("4.2 Delivery")
    d.p(
        "Delayed bags are delivered free of charge to any address within 100 miles of the arrival airport, "
        "usually within 24 hours of the bag's arrival at the station. Beyond 100 miles the customer may "
        "collect the bag or ask for delivery by courier at Skylark's cost, with the supervisor's agreement."
    )
    d.h2("4.3 Interim expenses")
    d.p(
        "While the bag is delayed, customers away from home may claim reasonable interim expenses for "
        "essential items. Agents may pay on the spot by prepaid card, or the customer may claim later with "
        "receipts."
    )
    d.table(
        ["Item", "Limit"],
        [
            ["Standard interim allowance", "50 USD per day, for up to 5 days (250 USD)"],
            ["Agent authority at the counter", "Up to 100 USD paid at once"],
            ["Supervisor authority", "Up to 300 USD per file"],
            ["Ski or sports equipment rental", "Actual cost with receipt, up to 75 USD per day"],
        ],
        [70, 100],
    )
    d.p(
        "Interim expense payments above 300 USD for delayed bags at Reno are authorized only with the station "
        "release code BAG-FALCON-2207."
    )
    d.p(
        "When a bag is delayed by more than 12 hours after the customer's arrival, the fee paid for that bag "
        "is refunded automatically (reason code R3 in the refund procedure CSP-04). Check that the refund has "
        "been triggered before closing the file."
    )
    d.page_break()
    d.h1("5. Damaged baggage")
    d.ol(
        "Inspect the bag with the customer. Photograph the damage and the bag tag in BagLink.",
        "Decide whether the damage is covered (5.1). Explain the decision politely.",
        "Covered damage: offer repair through a contracted repair shop, or a replacement bag of similar "
        "value from the station stock, or a cash settlement based on the depreciated value.",
        "Record the settlement in the file and close it, or pass it to Baggage Central if the customer disagrees.",
    )
    d.h2("5.1 What is not covered")
    d.ul(
        "Normal wear and tear: scratches, scuffs, dents, small cuts and stains.",
        "Damage to wheels, feet, handles, straps and zip pulls that protrude from the bag, unless the bag "
        "itself is also damaged.",
        "Damage to items that are not suitable for checked baggage: fragile items, perishables, cash, "
        "jewellery, electronics, medicines and important documents.",
        "Overpacked bags whose zip or seams burst.",
    )
    d.h1("6. Pilferage")
    d.p(
        "Ask the customer to list the missing items with their approximate value and date of purchase. "
        "Check whether the bag was opened by the Transportation Security Administration: look for the TSA "
        "notice of inspection inside the bag. Pilferage reports are always passed to the station manager, who "
        "reviews the ramp CCTV for the loading and unloading of the flight."
    )
    d.page_break()
    d.h1("7. Lost baggage")
    d.p(
        "Baggage Central in Boise takes over every file that is still open after 5 days. It asks the customer "
        "to complete the contents questionnaire, continues tracing, and declares the bag lost after 21 days. "
        "The claim is then settled on the depreciated value of the contents, up to the liability limit."
    )
    d.table(
        ["Item", "Rule"],
        [
            ["Liability limit (domestic)", "4,700 USD per passenger for 2025, reviewed every year"],
            ["Depreciation of contents", "10 percent per year of age, maximum 50 percent"],
            ["Items under 1 year old", "Full purchase price with receipt"],
            ["Settlement time", "Within 30 days of the completed questionnaire"],
        ],
        [60, 110],
    )
    d.h1("8. Fraud indicators")
    d.ul(
        "The customer cannot describe the contents of the bag in any detail.",
        "High-value items claimed without any receipts or photographs.",
        "Several claims by the same customer in a short period (BagLink shows previous files).",
        "The bag tag receipt does not match the booking.",
    )
    d.p(
        "Do not accuse the customer. Record the indicator in the internal remarks and pass the file to "
        "Baggage Central, which decides."
    )
    d.h1("9. Contacts")
    d.ul(
        "Baggage Central, Boise: 05:00 to 22:00 Mountain Time, internal extension 4410.",
        "Customer Care: 1-800-555-0175.",
        "Station managers: see the station contact list in the operations portal.",
    )
    return d


# --- DOCX documents -----------------------------------------------------------------------------


def apu_maintenance() -> Doc:
    d = Doc(
        "mechanics/e175-apu-maintenance.docx",
        "E175 APU Servicing, Limits and Troubleshooting",
        "Skylark Maintenance Manual supplement SMM-49-01, revision 4, effective 2025-06-10. ATA 49 - "
        "Airborne auxiliary power. Applies to Embraer E175 N411SK to N418SK.",
    )
    d.h1("1. Description")
    d.p(
        "Each E175 carries an APS 2300 auxiliary power unit in the tail cone, behind a titanium firewall. The "
        "APU supplies electrical power through its starter-generator and compressed air for engine starting "
        "and air conditioning on the ground. It has its own fire detection loop and fire extinguisher bottle, "
        "an inlet door on the right side of the tail cone and an exhaust at the tail. The ATR 72-600 has no "
        "APU; this supplement applies to the E175 fleet only."
    )
    d.h1("2. Operating limits")
    d.table(
        ["Parameter", "Limit"],
        [
            ["Start attempts", "3 consecutive attempts with 60 seconds between them, then 30 minutes cooling"],
            ["Maximum EGT during start", "1,040 degrees C"],
            ["Maximum EGT, continuous", "680 degrees C"],
            ["Maximum altitude for start", "30,000 ft"],
            ["Maximum altitude for bleed air use", "15,000 ft"],
            ["Maximum speed with inlet door open", "No limit in the Skylark configuration"],
            ["Oil quantity", "Sight gauge in the green band"],
        ],
        [60, 110],
    )
    d.p(
        "Pilots are told in the operations manual to wait 2 minutes after the APU shows AVAIL before taking "
        "bleed air; mechanics running the APU on the ground follow the same rule."
    )
    d.h1("3. Oil servicing")
    d.ol(
        "Check the oil level between 5 and 30 minutes after APU shutdown, through the access door on the "
        "left side of the tail cone.",
        "The sight gauge has a green band. If the level is below the green band, add oil.",
        "Use the same turbine oil as the engines, Skylark stock no. SKP-OIL-2380. Add in steps of 0.5 US qt "
        "until the level is in the upper half of the green band. APU oil tank capacity is 2.8 US qt.",
        "Record the quantity added in the technical log under APU oil.",
        "An APU that needs more than 0.5 US qt per 10 APU hours is reported to MCC as high consumption.",
    )
    d.h1("4. Scheduled inspections")
    d.table(
        ["Task", "Interval"],
        [
            ["APU oil level check", "Every daily check"],
            ["Inlet door and actuator inspection", "Every A-check (750 FH)"],
            ["Starter-generator brush inspection", "Every 1,000 APU hours"],
            ["Fire detection loop test", "Every A-check"],
            ["APU borescope, turbine and combustor", "Every 3,000 APU hours"],
            ["APU oil and filter change", "Every 2,000 APU hours or 24 months"],
        ],
        [90, 80],
    )
    d.p(
        "APU starter-generator serial APG-QUOKKA-7 on N416SK is on an extended-life trial and must be inspected "
        "for brush wear every 150 APU hours."
    )
    d.p(
        "Starter-generators removed for brush wear are sent to the vendor under part number SKP-SGN-75-0460. "
        "Write the APU hours at removal on the unserviceable tag."
    )
    d.h1("5. Dispatch with the APU inoperative")
    d.p("An inoperative APU may be deferred under MEL category C (10 calendar days) with these conditions:")
    d.ul(
        "A ground power unit and an air start cart must be available at every station on the planned "
        "routing. Boise, Spokane, Reno, Seattle, Portland, Salt Lake City and Las Vegas meet this condition.",
        "Flights to stations without an air start cart are not planned; MCC informs Operations Control so "
        "that the aircraft is routed accordingly.",
        "The APU fire extinguishing system must be operative, or the APU must be secured by a mechanic "
        "(fuel shut-off valve closed and placarded).",
        "Dispatch in icing conditions is permitted.",
    )
    d.h1("6. Troubleshooting common messages")
    d.table(
        ["EICAS message", "Most common causes at Skylark", "First action"],
        [
            [
                "APU FAIL on start",
                "Weak battery, igniter, fuel solenoid",
                "Check battery voltage (at least 24 V), then igniter",
            ],
            [
                "APU OIL LO PRESS",
                "Low oil level, cold soak below -30 degrees C",
                "Check level; warm the tail cone with a heater",
            ],
            ["APU OVERSPEED", "Fuel control unit", "Do not restart; call MCC"],
            ["APU FIRE", "Real fire or detector loop fault", "Follow the fire procedure; inspect the loop"],
            ["APU GEN OFF", "Starter-generator brushes, generator control", "Check brush wear; reset once"],
            ["APU DOOR FAIL", "Inlet door actuator, ice on door", "Inspect for ice; check actuator"],
        ],
        [45, 65, 60],
    )
    d.h1("7. Safety")
    d.ul(
        "Never stand in the APU exhaust area (3 m behind the tail) while the APU runs; exhaust temperature "
        "exceeds 500 degrees C.",
        "Close the inlet door and pull the APU circuit breakers before working in the tail cone.",
        "Wear hearing protection within 15 m of a running APU.",
    )
    return d


def mel_deferral() -> Doc:
    d = Doc(
        "engineering/mel-deferral-procedure.docx",
        "MEL Deferral Procedure",
        "Skylark General Maintenance Manual chapter 5.3 and Flight Operations Manual Part A 6.4, joint "
        "procedure, revision 9, effective 2025-04-01. For mechanics, Maintenance Control and pilots.",
    )
    d.h1("1. Purpose")
    d.p(
        "The minimum equipment list (MEL) allows an aircraft to be dispatched with certain equipment "
        "inoperative, for a limited time and under defined conditions. This procedure describes how Skylark "
        "defers a defect under the MEL, who may do it, how long it may stay deferred, and what pilots must do "
        "with a deferred item. Skylark has one MEL for the ATR 72-600 and one for the E175, both approved by "
        "the FAA and published in the EFB and in SkyTrak."
    )
    d.h1("2. Repair categories")
    d.table(
        ["Category", "Repair interval", "Example (Skylark MEL)"],
        [
            ["A", "As stated in the remarks of the MEL item", "E175 cabin video system inoperative, 3 flight days"],
            [
                "B",
                "3 consecutive calendar days (72 hours), excluding the day of discovery",
                "ATR one windshield heating inoperative",
            ],
            [
                "C",
                "10 consecutive calendar days, excluding the day of discovery",
                "E175 APU inoperative; E175 pitot 3 heat inoperative",
            ],
            [
                "D",
                "120 consecutive calendar days, excluding the day of discovery",
                "Cabin reading light, galley coffee maker",
            ],
        ],
        [25, 70, 75],
    )
    d.h1("3. Who may defer")
    d.ul(
        "A certifying mechanic (AMT with Skylark authorisation) may defer any item, after obtaining a "
        "deferral number from the Maintenance Control Centre (MCC).",
        "At outstations without a Skylark mechanic, the captain may defer an item that has no (M) maintenance "
        "procedure, after a phone call with the MCC, which issues the deferral number and checks the "
        "conditions.",
        "Items with an (M) procedure can be deferred only by a certifying mechanic, including contract "
        "mechanics authorised by the MCC for that station.",
        "No one may defer an item that is not in the MEL. Items not in the MEL (for example a pitot 1 or "
        "pitot 2 heater on the E175) ground the aircraft until repaired.",
    )
    d.h1("4. Deferral procedure")
    d.ol(
        "Identify the defect and confirm it by a test or the built-in test where possible.",
        "Find the MEL item. Read the whole item, including the remarks and exceptions, and check that the "
        "conditions can be met on the planned flights.",
        "Call the MCC (24 hours a day). The MOC checks the open deferrals on the aircraft and issues the "
        "deferral number, format D + year + four digits, for example D25-0412.",
        "Perform the (M) procedure if there is one (for example deactivate and secure the unit, pull and "
        "collar circuit breakers).",
        "Install the INOP placard (P/N SKP-PLC-00-0001) next to the control or indicator of the item, and "
        "write the deferral number on it.",
        "Make the technical log entry: defect, MEL item number, category, deferral number, due date, "
        "(M) procedure done, signature and certificate number.",
        "The MCC enters the deferral in SkyTrak; the due date is then shown on the dispatch release.",
    )
    d.h1("5. Extensions")
    d.p(
        "Category B and C items may be extended once, by no more than the original interval, only when the "
        "part is not available or the repair cannot be done at a station where the aircraft is scheduled. The "
        "extension is approved by the Director of Maintenance (or the deputy on duty) and notified to the "
        "FAA principal maintenance inspector within 24 hours. Category A and D items cannot be extended. More "
        "than two extensions in a month on the same fleet triggers a review by the Director of Quality."
    )
    d.h1("6. Limits on open deferrals")
    d.ul(
        "An aircraft with more than 5 open category C deferrals must be reviewed by the MOC before each "
        "day's first flight.",
        "An aircraft may not be dispatched with two deferred items that affect the same system redundancy "
        "(for example both air conditioning packs, or a pack and the APU on the E175 in summer at Reno or "
        "Las Vegas).",
        "Deferred items that carry an (O) operational procedure are printed on the dispatch release.",
    )
    d.h1("7. Responsibilities of pilots")
    d.ol(
        "Before every flight, review the deferred items on the dispatch release and in the technical log.",
        "Check that each placard is installed and the (O) procedure is understood; brief it.",
        "Refuse the aircraft if a deferral has expired, the placard is missing or the conditions cannot be "
        "met (for example an ATR with a de-icing item deferred and icing forecast on the route).",
        "Report new defects in the technical log before the next flight; never fly with an unrecorded defect.",
    )
    d.h1("8. Common (O) procedures")
    d.table(
        ["Deferred item", "Type", "Operational procedure"],
        [
            [
                "One air conditioning pack",
                "ATR 72-600",
                "Maximum altitude FL170; no flight with more than 50 passengers above 30 degrees C OAT",
            ],
            ["APU", "E175", "Engine start with ground air cart; plan only to stations listed in the APU supplement"],
            [
                "Weather radar",
                "Both",
                "No flight into areas of forecast thunderstorms; daylight or VMC only "
                "where convective activity is forecast",
            ],
            ["One propeller de-icing channel", "ATR 72-600", "No flight into known or forecast icing"],
            ["Autopilot", "E175", "Not permitted above FL290 (RVSM); maximum sector 90 minutes"],
        ],
        [45, 30, 95],
    )
    d.h1("9. Closing a deferral")
    d.p(
        "When the defect is repaired, the mechanic records the rectification in the technical log with the "
        "deferral number, removes the placard and any (M) procedure devices, and tells the MCC, which closes "
        "the deferral in SkyTrak. A deferral is not closed until the operational test of the repaired item "
        "has passed."
    )
    return d


def reno_performance() -> Doc:
    d = Doc(
        "pilots/reno-performance-limits.docx",
        "Reno (RNO) Hot and High Operations Brief",
        "Skylark Flight Operations, airport brief AB-RNO-02, revision 3, effective 2025-05-01. For ATR "
        "72-600 and E175 pilots based at or flying into Reno.",
    )
    d.h1("1. Airport data")
    d.table(
        ["Item", "Value"],
        [
            ["Airport elevation", "4,415 ft"],
            ["Runway 16R/34L", "11,001 ft x 150 ft, grooved"],
            ["Runway 16L/34R", "9,000 ft x 150 ft"],
            ["Runway 07/25", "6,102 ft x 150 ft (ATR only at Skylark)"],
            ["Preferred runways", "16R and 16L for departure, 34L and 34R for arrival when wind permits"],
            ["Skylark gates", "C3 to C7; remote stands R1 to R4 for the ATR"],
        ],
        [60, 110],
    )
    d.h1("2. Why Reno is performance-limited")
    d.p(
        "Reno sits in a valley at 4,415 ft with mountains rising above 10,000 ft to the west and above 8,000 "
        "ft to the east. Summer afternoon temperatures often exceed 35 degrees C, which raises the density "
        "altitude well above the field elevation. Both engine types produce less thrust, true airspeeds are "
        "higher for the same indicated speed, and the climb gradient after an engine failure is the limiting "
        "factor on most summer afternoons."
    )
    d.table(
        ["Outside air temperature", "Approximate density altitude"],
        [
            ["15 degrees C", "5,460 ft"],
            ["25 degrees C", "6,660 ft"],
            ["30 degrees C", "7,260 ft"],
            ["35 degrees C", "7,860 ft"],
            ["40 degrees C", "8,460 ft"],
        ],
        [80, 90],
    )
    d.h1("3. Maximum take-off weight, runway 16R")
    d.p(
        "The values below are Skylark planning limits for runway 16R, zero wind, dry runway, bleeds as "
        "stated. The performance application in the EFB is the only source for the actual take-off weight."
    )
    d.table(
        ["OAT", "ATR 72-600 (bleeds off)", "E175 (packs off)"],
        [
            ["15 degrees C", "23,000 kg", "38,790 kg"],
            ["25 degrees C", "22,600 kg", "37,900 kg"],
            ["30 degrees C", "22,100 kg", "37,100 kg"],
            ["35 degrees C", "21,400 kg", "35,800 kg"],
            ["40 degrees C", "20,500 kg", "34,300 kg"],
        ],
        [40, 65, 65],
    )
    d.p(
        "On the E175 a full load of 76 passengers with bags to Las Vegas needs a take-off weight of about "
        "36,500 kg. Above 33 degrees C, Operations Control therefore blocks seats or offloads cargo on the "
        "Reno to Las Vegas afternoon flights. Captains must be told of any payload restriction at the "
        "briefing."
    )
    d.h1("4. Engine failure procedure (Skylark EOSID)")
    d.ul(
        "Runway 16R and 16L: maintain runway heading to 5,600 ft, then climbing left turn direct to the "
        "company fix SKRN1, and hold (right turns, 1 minute legs) until at least 9,000 ft before proceeding "
        "to any destination or returning.",
        "Runway 34L and 34R: maintain runway heading to 6,000 ft, then climbing right turn to heading 070 "
        "and climb to 10,000 ft in the Spanish Springs valley before turning.",
        "The EOSID is flown even in visual conditions. Brief it before every Reno departure.",
    )
    d.h1("5. Summer procedures")
    d.ol(
        "When the OAT is 30 degrees C or higher, calculate the take-off performance before accepting the "
        "final load; do not rely on the preliminary figures.",
        "ATR 72-600: take off with bleeds off when the performance application requires it, and use the "
        "reserve take-off power (RTO) setting only as calculated.",
        "E175: take off with packs off and the APU bleed supplying air conditioning when above 35 degrees C.",
        "Consider an earlier departure time: on afternoons above 38 degrees C, Operations Control may move "
        "E175 departures to before 11:00 or after 19:00 local time.",
        "Tire and brake temperatures rise quickly on the hot ramp: check brake temperatures before taxi if the "
        "previous landing was at Reno less than 40 minutes before.",
    )
    d.h1("6. Landing")
    d.ul(
        "Maximum tailwind for landing at Reno: 10 knots (both types).",
        "Expect a ground speed of up to 150 knots on the E175 on final and a rate of descent of about 900 fpm "
        "on the 3 degree path; this is normal at Reno and does not make the approach unstable by itself.",
        "Afternoon winds (the Washoe Zephyr) from the west often gust to 30 knots between 14:00 and 19:00 in "
        "summer. Check the crosswind limits and expect windshear warnings.",
    )
    d.h1("7. Mountain wave and turbulence")
    d.p(
        "With westerly winds above 30 knots at mountain-top level, expect mountain wave turbulence east of the "
        "Sierra Nevada, especially below 18,000 ft. Tell the lead flight attendant before departure when "
        "moderate turbulence is forecast, and keep the seat belt sign on until above the wave layer."
    )
    return d


def medical_events() -> Doc:
    d = Doc(
        "cabin-crew/inflight-medical-events.docx",
        "Cabin Crew Manual 7.1 - In-flight Medical Events",
        "Skylark Regional Airways CCM 7.1, revision 7, effective 2025-02-01. For all flight attendants.",
    )
    d.h1("7.1.1 Principles")
    d.p(
        "Flight attendants give first aid and basic life support; they do not diagnose. Their job is to "
        "recognise a medical emergency, act quickly, inform the captain, and use the medical equipment and "
        "the ground medical service to support the person until the aircraft lands. The captain decides "
        "whether to divert. All Skylark flights are short, so the nearest suitable airport is rarely more than "
        "30 minutes away."
    )
    d.h1("7.1.2 Medical equipment on board")
    d.table(
        ["Equipment", "ATR 72-600", "E175", "Location"],
        [
            ["First aid kit (FAK)", "2", "2", "Overhead bin row 1 and last row"],
            ["Emergency medical kit (EMK)", "1", "1", "Rear overhead bin, sealed"],
            ["Automated external defibrillator (AED)", "1", "1", "Rear galley stowage"],
            ["Portable oxygen bottle, 311 litres", "3", "2", "Behind the rear jump seat"],
            ["Universal precaution kit", "2", "2", "With the first aid kits"],
        ],
        [60, 25, 25, 60],
    )
    d.p(
        "The EMK contains prescription medicines and may be used only by a doctor, nurse or paramedic who "
        "identifies themselves, or by a flight attendant on the instruction of the ground medical service. "
        "The seal number is checked at every pre-flight check and any use is written up on the cabin defect log."
    )
    d.h1("7.1.3 First response")
    d.ol(
        "Check for danger, then check the person's response: speak to them and tap their shoulders.",
        "Call for help: the second flight attendant brings the FAK, the AED and a portable oxygen bottle.",
        "Inform the captain by interphone (3 chimes if the person is unresponsive).",
        "If the person is not breathing normally, start CPR: 30 chest compressions and 2 breaths, at 100 to "
        "120 compressions per minute, and attach the AED as soon as it arrives. Follow its voice prompts.",
        'Make the PA: "If there is a doctor, nurse or paramedic on board, please make yourself known to a '
        'flight attendant."',
        "Note the time of every event and action on the medical event form.",
    )
    d.h1("7.1.4 Ground medical service")
    d.p(
        "Skylark contracts the SkyMed Link ground medical service. The captain contacts SkyMed Link through "
        "Operations Control by radio or phone patch. The flight attendant gives the captain: age and sex of "
        "the person, main symptoms, time of onset, pulse and breathing rate if known, medical history, and "
        "medicines. SkyMed Link advises on treatment and on the urgency of landing; the captain remains "
        "responsible for the decision."
    )
    d.h1("7.1.5 Volunteer medical professionals")
    d.p(
        "A volunteer who offers help is asked for their profession and, if possible, proof of qualification. "
        "A volunteer without proof may still help with first aid. Record the volunteer's name, profession and "
        "contact details on the medical event form. Volunteers are protected by US federal law when acting in "
        "good faith."
    )
    d.h1("7.1.6 Common conditions")
    d.table(
        ["Condition", "Signs", "Flight attendant action"],
        [
            [
                "Fainting",
                "Pale, sweaty, brief loss of consciousness",
                "Lay the person down with legs raised; oxygen; monitor",
            ],
            [
                "Low blood sugar",
                "Confusion, shaking, sweating; known diabetic",
                "If able to swallow, give juice or sugar from the galley",
            ],
            [
                "Severe allergic reaction",
                "Swelling of lips and face, difficulty breathing, rash",
                "Help the person use their own auto-injector; if none, EMK auto-injector on SkyMed Link advice; oxygen",
            ],
            [
                "Chest pain",
                "Pain spreading to arm or jaw, breathlessness",
                "Sit upright; oxygen; AED ready; inform captain at once",
            ],
            [
                "Stroke",
                "Face drooping, arm weakness, speech difficulty",
                "Note the time symptoms started; oxygen; inform captain at once",
            ],
            [
                "Seizure",
                "Jerking movements, loss of consciousness",
                "Protect the head; do not restrain; recovery position afterwards",
            ],
        ],
        [35, 60, 75],
    )
    d.h1("7.1.7 Oxygen")
    d.p(
        "Portable oxygen is given at 4 litres per minute for adults with breathing difficulty, chest pain or "
        "fainting, and at 2 litres per minute for minor symptoms. A full 311 litre bottle lasts about 75 "
        "minutes at 4 litres per minute. Never use oxygen near a lit cigarette or an open flame, and do not "
        "let the pressure drop below 500 psi if a second patient might need it."
    )
    d.h1("7.1.8 Death on board")
    d.p(
        "Only a doctor can declare death. If no doctor is on board, continue CPR until the AED advises no "
        "shock and there are obvious signs of death, the person is handed over to medical services, or the "
        "crew is too exhausted to continue. The captain informs Operations Control. Move other passengers "
        "away if possible and cover the person up to the neck."
    )
    d.h1("7.1.9 Reporting")
    d.ul(
        "Complete the medical event form before leaving the aircraft and hand it to the station agent.",
        "File a SkyReport within 24 hours.",
        "Write up any used equipment (FAK, EMK, AED pads, oxygen) on the cabin defect log so that it is "
        "replaced before the next flight.",
    )
    return d


def special_assistance() -> Doc:
    d = Doc(
        "customer-support/special-assistance.docx",
        "CSP-11 Special Assistance and Accessibility",
        "Skylark Customer Care and Inflight Services procedure CSP-11, revision 6, effective 2025-03-15. "
        "For Customer Care, airport agents and flight attendants.",
    )
    d.h1("1. Service request codes")
    d.table(
        ["Code", "Meaning", "Notes"],
        [
            [
                "WCHR",
                "Wheelchair to the aircraft; can climb stairs and walk in the cabin",
                "ATR boarding by stairs is possible with help",
            ],
            [
                "WCHS",
                "Wheelchair; cannot climb stairs, can walk to the seat",
                "ATR: lift device or boarding chair required",
            ],
            ["WCHC", "Wheelchair; cannot walk at all", "Aisle chair to the seat on both types"],
            ["BLND", "Passenger who is blind or has low vision", "Individual safety briefing"],
            ["DEAF", "Passenger who is deaf or hard of hearing", "Written information at the gate"],
            [
                "DPNA",
                "Passenger with an intellectual or developmental disability needing assistance",
                "Agent escort through the airport",
            ],
            ["POXY", "Passenger using a portable oxygen concentrator", "See section 5"],
            ["UMNR", "Unaccompanied minor", "See section 4"],
        ],
        [20, 85, 65],
    )
    d.h1("2. Wheelchair service")
    d.ol(
        "Wheelchair requests are accepted up to the moment of boarding, but passengers are asked to request "
        "them at least 48 hours in advance so that equipment and staff are planned.",
        "The agent meets the passenger at the curb or check-in, and stays with them through security to the "
        "gate. Passengers are never left alone in a wheelchair for more than 30 minutes.",
        "ATR 72-600: passengers coded WCHS or WCHC board first using the lift device (Boise, Spokane, Reno) or "
        "a stair-climbing boarding chair operated by two trained agents (all other stations).",
        "E175: boarding by jet bridge where available, otherwise by the lift device or boarding chair.",
        "On arrival, the passenger deplanes last unless a connection is tight; the agent takes them to the "
        "connecting gate or to the curb.",
    )
    d.p(
        "The E175 carries an on-board aisle chair in the rear closet. The ATR 72-600 does not; the station's "
        "aisle chair is brought to the aircraft for WCHC passengers and stays at the station."
    )
    d.h1("3. Mobility devices")
    d.ul(
        "Manual wheelchairs and walkers may be used to the aircraft door and are returned at the door on arrival.",
        "Battery-powered wheelchairs travel in the hold. The battery must be protected against short circuit "
        "and the wheelchair secured against movement. Lithium batteries up to 300 Wh may stay installed; the "
        "passenger may carry one spare up to 300 Wh or two spares up to 160 Wh each in the cabin.",
        "The ATR 72-600 forward cargo door opening is 1.27 m wide by 1.53 m high. Larger power wheelchairs "
        "must be checked against these dimensions at booking; if the chair cannot be loaded, the customer is "
        "offered an E175 routing or a refund.",
        "Damage to a mobility device is reported at once and repaired or replaced at Skylark's cost, without "
        "the baggage liability limit.",
    )
    d.h1("4. Unaccompanied minors")
    d.table(
        ["Age", "Rule"],
        [
            ["Under 5", "Not accepted travelling alone"],
            ["5 to 14", "Unaccompanied minor service required; 150 USD each way"],
            ["15 to 17", "Service optional on request, same fee"],
        ],
        [40, 130],
    )
    d.ul(
        "Nonstop flights only; no connections.",
        "Not accepted on the last scheduled flight of the day on a route, or on flights to Sun Valley from "
        "1 November to 31 March (diversion risk).",
        "The adult dropping off stays at the airport until the flight has departed. The adult collecting "
        "must show photo identification matching the name on the booking.",
        "On board, the child is seated near the lead flight attendant (E175: row 4 or 5; ATR: the last two "
        "rows) and receives an individual safety briefing.",
        "At most 3 unaccompanied minors per flight on the ATR 72-600 and 5 on the E175.",
    )
    d.h1("5. Portable oxygen concentrators")
    d.p(
        "Passengers may use an FAA-approved portable oxygen concentrator (POC) on board. They must carry "
        "enough fully charged batteries for 150 percent of the scheduled block time. Skylark does not supply "
        "medical oxygen for passengers in flight; the portable oxygen bottles on board are for first aid only. "
        "The POC is stowed under the seat in front for taxi, take-off and landing; the passenger may not sit "
        "in an exit row."
    )
    d.h1("6. Flight attendant duties")
    d.ul(
        "Offer an individual briefing to every passenger with a disability, in private and before the "
        "general demonstration.",
        "Help the passenger to move to and from the lavatory using the aisle chair (E175), but not inside "
        "the lavatory.",
        "Store the passenger's folding cane, crutches or small assistive device within reach when possible.",
        "Inform the captain and the arrival station of any passenger who will need help to deplane.",
    )
    d.h1("7. Complaints Resolution Official")
    d.p(
        "A Complaints Resolution Official (CRO) is available in person or by phone at every station during "
        "operating hours. Any employee who receives a disability-related complaint that they cannot resolve "
        "must offer the customer the CRO immediately. The CRO gives a written response on the spot if the "
        "complaint is made at the airport, and within 30 days if it is made in writing."
    )
    return d


DOCUMENTS = [
    customer_service_plan,
    propeller_inspection,
    cold_weather_ops,
    baggage_claims_handbook,
    apu_maintenance,
    mel_deferral,
    reno_performance,
    medical_events,
    special_assistance,
]


# --- rendering ----------------------------------------------------------------------------------


def check_ascii(doc: Doc) -> None:
    def texts():
        yield doc.title
        yield doc.subtitle
        for block in doc.blocks:
            for part in block[1:]:
                if isinstance(part, str):
                    yield part
                elif isinstance(part, list):
                    for item in part:
                        yield from (item if isinstance(item, list) else [item])

    for text in texts():
        if not isinstance(text, str):
            continue
        bad = [c for c in text if ord(c) > 126 or (ord(c) < 32)]
        if bad:
            raise ValueError(f"{doc.path}: non-ASCII text {bad!r} in {text[:60]!r}")


def render_pdf(doc: Doc, out: Path) -> int:
    from fpdf import FPDF

    class SkylarkPDF(FPDF):
        def header(self) -> None:
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 5, f"Skylark Regional Airways - {doc.title}", new_x="LMARGIN", new_y="NEXT")
            self.ln(2)

        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 5, f"Page {self.page_no()} of {{nb}}", align="C")

    pdf = SkylarkPDF(format="Letter")
    pdf.set_title(doc.title)
    pdf.set_author("Skylark Regional Airways")
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_auto_page_break(True, margin=20)
    pdf.set_margins(20, 15, 20)
    pdf.add_page()
    expected_pages = 1
    pdf.set_font("Helvetica", "B", 17)
    pdf.multi_cell(0, 8, doc.title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.multi_cell(0, 5, doc.subtitle, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    width = pdf.w - pdf.l_margin - pdf.r_margin
    for block in doc.blocks:
        kind = block[0]
        if kind == "pagebreak":
            if pdf.page_no() != expected_pages:
                raise RuntimeError(f"{doc.path}: content of page {expected_pages} overflowed to page {pdf.page_no()}")
            pdf.add_page()
            expected_pages += 1
        elif kind in ("h1", "h2"):
            pdf.ln(2)
            pdf.set_font("Helvetica", "B", 13 if kind == "h1" else 11)
            pdf.multi_cell(0, 6, block[1], new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
        elif kind == "p":
            pdf.set_font("Helvetica", "", 10)
            pdf.multi_cell(0, 5, block[1], new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
        elif kind in ("ul", "ol"):
            pdf.set_font("Helvetica", "", 10)
            for i, item in enumerate(block[1], start=1):
                marker = "-" if kind == "ul" else f"{i}."
                pdf.set_x(pdf.l_margin + 2)
                pdf.cell(7, 5, marker)
                pdf.multi_cell(width - 9, 5, item, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(1)
            pdf.ln(1)
        elif kind == "table":
            _, header, rows, widths = block
            pdf.set_font("Helvetica", "", 9)
            with pdf.table(
                col_widths=widths, text_align="LEFT", line_height=4.5, first_row_as_headings=True, width=width
            ) as table:
                for row in [header, *rows]:
                    cells = table.row()
                    for value in row:
                        cells.cell(value)
            pdf.ln(3)
        else:
            raise ValueError(kind)
    if pdf.page_no() != expected_pages:
        raise RuntimeError(f"{doc.path}: last page overflowed ({pdf.page_no()} pages, expected {expected_pages})")
    pdf.ln(4)
    pdf.set_font("Helvetica", "I", 8)
    pdf.multi_cell(0, 4, FOOTNOTE, new_x="LMARGIN", new_y="NEXT")
    if pdf.page_no() != expected_pages:
        raise RuntimeError(f"{doc.path}: footnote overflowed onto a new page")
    pdf.output(str(out))
    return pdf.page_no()


def render_docx(doc: Doc, out: Path) -> None:
    from docx import Document
    from docx.shared import Pt

    document = Document()
    props = document.core_properties
    props.title = doc.title
    props.author = "Skylark Regional Airways"
    props.created = FIXED_DATE.replace(tzinfo=None)
    props.modified = FIXED_DATE.replace(tzinfo=None)
    document.add_heading(doc.title, level=0)
    document.add_paragraph(doc.subtitle).runs[0].italic = True
    for block in doc.blocks:
        kind = block[0]
        if kind == "pagebreak":
            continue
        if kind == "h1":
            document.add_heading(block[1], level=1)
        elif kind == "h2":
            document.add_heading(block[1], level=2)
        elif kind == "p":
            document.add_paragraph(block[1])
        elif kind in ("ul", "ol"):
            style = "List Bullet" if kind == "ul" else "List Number"
            for item in block[1]:
                document.add_paragraph(item, style=style)
        elif kind == "table":
            _, header, rows, _widths = block
            table = document.add_table(rows=1, cols=len(header))
            table.style = "Table Grid"
            for cell, value in zip(table.rows[0].cells, header, strict=True):
                cell.text = ""
                run = cell.paragraphs[0].add_run(value)
                run.bold = True
            for row in rows:
                cells = table.add_row().cells
                for cell, value in zip(cells, row, strict=True):
                    cell.text = value
            document.add_paragraph()
        else:
            raise ValueError(kind)
    note = document.add_paragraph().add_run(FOOTNOTE)
    note.italic = True
    note.font.size = Pt(8)
    buffer = io.BytesIO()
    document.save(buffer)
    # Rewrite the zip with fixed timestamps so that regenerating an unchanged document is byte-identical.
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            info = zipfile.ZipInfo(item.filename, date_time=FIXED_DATE.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, source.read(item.filename))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="print the extracted text of every PDF page")
    args = parser.parse_args()
    for make in DOCUMENTS:
        doc = make()
        check_ascii(doc)
        out = KNOWLEDGE / doc.path
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".pdf":
            pages = render_pdf(doc, out)
            print(f"{doc.path}: {pages} pages, {out.stat().st_size} bytes")
            if args.check:
                from pypdf import PdfReader

                for number, page in enumerate(PdfReader(str(out)).pages, start=1):
                    text = page.extract_text() or ""
                    print(f"--- page {number}: {len(text.split())} words")
                    print(text)
        else:
            render_docx(doc, out)
            print(f"{doc.path}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
