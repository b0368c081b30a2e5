"""Norfolk place data for synthetic addresses and school names.

A small hand-made table, not a gazetteer: each real Norfolk postcode district (outward code) with its Royal Mail post
town and a few towns, villages or suburbs inside it. NR32-NR34 (Lowestoft, Beccles) and IP23 (Eye) are left out
because they lie in Suffolk; NR35 (Bungay) is kept for its Norfolk villages.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Letters Royal Mail uses in the inward code's unit (never C, I, K, M, O or V).
INWARD_UNIT_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


@dataclass(frozen=True)
class PostcodeDistrict:
    """One postcode district: ``outward`` code, ``post_town`` (upper case, as Royal Mail writes it), ``town`` (the
    same in title case), ``localities`` inside it, and ``weight`` (rough relative number of households)."""

    outward: str
    post_town: str
    localities: tuple[str, ...]
    weight: float

    @property
    def town(self) -> str:
        """The post town in title case: ``KING'S LYNN`` -> ``King's Lynn``."""
        return _TOWN_NAMES.get(self.post_town, self.post_town.title())


_TOWN_NAMES = {"KING'S LYNN": "King's Lynn", "WELLS-NEXT-THE-SEA": "Wells-next-the-Sea"}

NORFOLK_POSTCODE_DISTRICTS: tuple[PostcodeDistrict, ...] = (
    PostcodeDistrict("NR1", "NORWICH", ("Lakenham", "Thorpe Hamlet"), 3.0),
    PostcodeDistrict("NR2", "NORWICH", ("Heigham", "Colegate"), 3.0),
    PostcodeDistrict("NR3", "NORWICH", ("Mile Cross", "Sewell", "Catton Grove"), 3.0),
    PostcodeDistrict("NR4", "NORWICH", ("Eaton", "Cringleford", "University"), 2.5),
    PostcodeDistrict("NR5", "NORWICH", ("Bowthorpe", "Costessey", "Earlham"), 3.0),
    PostcodeDistrict("NR6", "NORWICH", ("Hellesdon", "Old Catton", "Horsham St Faith"), 3.0),
    PostcodeDistrict("NR7", "NORWICH", ("Sprowston", "Thorpe St Andrew", "Rackheath"), 3.0),
    PostcodeDistrict("NR8", "NORWICH", ("Taverham", "Drayton", "Attlebridge"), 2.0),
    PostcodeDistrict("NR9", "NORWICH", ("Hethersett", "Mattishall", "Barnham Broom", "Easton"), 2.0),
    PostcodeDistrict("NR10", "NORWICH", ("Horsford", "Reepham", "Hevingham", "Cawston"), 1.5),
    PostcodeDistrict("NR11", "NORWICH", ("Aylsham", "Erpingham", "Roughton"), 1.5),
    PostcodeDistrict("NR12", "NORWICH", ("Wroxham", "Hoveton", "Coltishall", "Stalham"), 1.5),
    PostcodeDistrict("NR13", "NORWICH", ("Brundall", "Blofield", "Acle", "Lingwood"), 1.5),
    PostcodeDistrict("NR14", "NORWICH", ("Poringland", "Loddon", "Brooke", "Trowse"), 1.5),
    PostcodeDistrict("NR15", "NORWICH", ("Long Stratton", "Hempnall", "Tasburgh"), 1.0),
    PostcodeDistrict("NR16", "NORWICH", ("Old Buckenham", "Banham", "Kenninghall", "East Harling"), 1.0),
    PostcodeDistrict("NR17", "ATTLEBOROUGH", ("", "Great Ellingham", "Rocklands"), 1.5),
    PostcodeDistrict("NR18", "WYMONDHAM", ("", "Spooner Row"), 1.5),
    PostcodeDistrict("NR19", "DEREHAM", ("", "Scarning", "Toftwood"), 2.0),
    PostcodeDistrict("NR20", "DEREHAM", ("North Elmham", "Swanton Morley", "Foulsham", "Bawdeswell"), 1.0),
    PostcodeDistrict("NR21", "FAKENHAM", ("", "Sculthorpe", "Great Ryburgh"), 1.0),
    PostcodeDistrict("NR22", "WALSINGHAM", ("", "Great Snoring"), 0.3),
    PostcodeDistrict("NR23", "WELLS-NEXT-THE-SEA", ("", "Wighton", "Stiffkey"), 0.4),
    PostcodeDistrict("NR24", "MELTON CONSTABLE", ("", "Briston", "Hindolveston"), 0.4),
    PostcodeDistrict("NR25", "HOLT", ("", "Blakeney", "Kelling"), 0.7),
    PostcodeDistrict("NR26", "SHERINGHAM", ("", "Beeston Regis", "Upper Sheringham"), 0.7),
    PostcodeDistrict("NR27", "CROMER", ("", "Overstrand", "East Runton"), 0.8),
    PostcodeDistrict("NR28", "NORTH WALSHAM", ("", "Mundesley", "Bacton"), 1.5),
    PostcodeDistrict("NR29", "GREAT YARMOUTH", ("Martham", "Hemsby", "Ormesby St Margaret", "Winterton-on-Sea"), 1.0),
    PostcodeDistrict("NR30", "GREAT YARMOUTH", ("", "Caister-on-Sea", "Southtown"), 2.5),
    PostcodeDistrict("NR31", "GREAT YARMOUTH", ("Gorleston-on-Sea", "Bradwell", "Belton", "Hopton-on-Sea"), 2.5),
    PostcodeDistrict("NR35", "BUNGAY", ("Ditchingham", "Earsham", "Broome"), 0.4),
    PostcodeDistrict("PE30", "KING'S LYNN", ("", "Gaywood", "South Wootton", "North Wootton"), 3.0),
    PostcodeDistrict("PE31", "KING'S LYNN", ("Heacham", "Snettisham", "Dersingham", "Burnham Market"), 1.0),
    PostcodeDistrict("PE32", "KING'S LYNN", ("Gayton", "Narborough", "Grimston"), 0.8),
    PostcodeDistrict("PE33", "KING'S LYNN", ("Watlington", "Marham", "Stoke Ferry"), 0.8),
    PostcodeDistrict("PE34", "KING'S LYNN", ("Terrington St Clement", "Clenchwarton", "Walpole St Andrew"), 1.0),
    PostcodeDistrict("PE35", "SANDRINGHAM", ("", "West Newton"), 0.1),
    PostcodeDistrict("PE36", "HUNSTANTON", ("", "Old Hunstanton"), 0.6),
    PostcodeDistrict("PE37", "SWAFFHAM", ("", "Sporle", "Necton"), 1.0),
    PostcodeDistrict("PE38", "DOWNHAM MARKET", ("", "Hilgay", "Denver"), 1.2),
    PostcodeDistrict("IP20", "HARLESTON", ("", "Redenhall"), 0.5),
    PostcodeDistrict("IP21", "DISS", ("Dickleburgh", "Pulham Market"), 0.4),
    PostcodeDistrict("IP22", "DISS", ("", "Roydon", "Bressingham"), 1.2),
    PostcodeDistrict("IP24", "THETFORD", ("", "Croxton"), 2.0),
    PostcodeDistrict("IP25", "THETFORD", ("Watton", "Saham Toney", "Ashill"), 1.0),
    PostcodeDistrict("IP26", "THETFORD", ("Methwold", "Feltwell", "Hockwold cum Wilton"), 0.6),
)

#: English street suffixes (Faker's en_GB list also has American ones such as "Parkway" and "Ranch").
STREET_SUFFIXES = (
    "Road", "Road", "Road", "Street", "Lane", "Lane", "Close", "Close", "Avenue", "Drive", "Way", "Gardens",
    "Crescent", "Place", "Court", "Green", "Grove", "Walk", "Rise", "Mews", "Terrace", "Row", "Meadow", "View",
)  # fmt: skip

#: Street name stems common in Norfolk towns and villages, used beside Faker surnames.
STREET_STEMS = (
    "Church", "Mill", "School", "Station", "Chapel", "Market", "Norwich", "Yarmouth", "Holt", "Cromer", "Manor",
    "Rectory", "Pound", "Common", "Back", "Low", "Hall", "Broad", "Beech", "Oak", "Willow", "Elm", "Orchard", "Abbey",
    "Priory", "Wensum", "Yare", "Bure", "Waveney", "Marsh", "Heath", "Fen", "Holly", "Ash", "Mount", "Victoria",
)  # fmt: skip

#: Whole street names that are not stem + suffix.
WHOLE_STREETS = ("The Street", "High Street", "The Green", "The Loke", "Low Road", "The Common", "Back Lane")

#: House names for the minority of rural addresses without a number.
HOUSE_NAMES = (
    "Rose Cottage", "Holly House", "The Old Rectory", "Orchard House", "Mill Cottage", "The Old School House",
    "Church Farm", "Ivy Cottage", "The Barn", "Meadow View", "Willow Lodge", "Manor Farm Cottage", "The Old Forge",
)  # fmt: skip
