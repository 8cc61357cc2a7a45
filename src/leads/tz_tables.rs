//! Data tables for time zone inference: NANP area codes and single-zone countries.
//!
//! Kept apart from the logic in `timezone.rs` so the tables can be reviewed and updated alone.

/// Every current NANP geographic area code (US, Canada, territories, Caribbean) with its zone,
/// or `None` where the area code spans zones (or DST practices), sorted by area code.
pub(super) const NANP_AREA_CODES: &[(u16, Option<&str>)] = &[
    (201, Some("America/New_York")),      // New Jersey
    (202, Some("America/New_York")),      // District of Columbia
    (203, Some("America/New_York")),      // Connecticut
    (204, Some("America/Winnipeg")),      // Manitoba
    (205, Some("America/Chicago")),       // Alabama
    (206, Some("America/Los_Angeles")),   // Washington
    (207, Some("America/New_York")),      // Maine
    (208, None),                          // Idaho: Pacific north, Mountain south
    (209, Some("America/Los_Angeles")),   // California
    (210, Some("America/Chicago")),       // Texas
    (212, Some("America/New_York")),      // New York
    (213, Some("America/Los_Angeles")),   // California
    (214, Some("America/Chicago")),       // Texas
    (215, Some("America/New_York")),      // Pennsylvania
    (216, Some("America/New_York")),      // Ohio
    (217, Some("America/Chicago")),       // Illinois
    (218, Some("America/Chicago")),       // Minnesota
    (219, None),                          // Indiana: Eastern and Central counties
    (220, Some("America/New_York")),      // Ohio
    (223, Some("America/New_York")),      // Pennsylvania
    (224, Some("America/Chicago")),       // Illinois
    (225, Some("America/Chicago")),       // Louisiana
    (226, Some("America/Toronto")),       // Ontario
    (227, Some("America/New_York")),      // Maryland
    (228, Some("America/Chicago")),       // Mississippi
    (229, Some("America/New_York")),      // Georgia
    (231, Some("America/New_York")),      // Michigan
    (234, Some("America/New_York")),      // Ohio
    (235, Some("America/Chicago")),       // Missouri
    (236, None), // British Columbia: Pacific, Mountain and no-DST Peace River
    (239, Some("America/New_York")), // Florida
    (240, Some("America/New_York")), // Maryland
    (242, Some("America/Nassau")), // Bahamas
    (246, Some("America/Barbados")), // Barbados
    (248, Some("America/New_York")), // Michigan
    (249, Some("America/Toronto")), // Ontario
    (250, None), // British Columbia: Pacific, Mountain and no-DST Peace River
    (251, Some("America/Chicago")), // Alabama
    (252, Some("America/New_York")), // North Carolina
    (253, Some("America/Los_Angeles")), // Washington
    (254, Some("America/Chicago")), // Texas
    (256, Some("America/Chicago")), // Alabama
    (257, None), // British Columbia: Pacific, Mountain and no-DST Peace River
    (260, Some("America/New_York")), // Indiana (Eastern)
    (262, Some("America/Chicago")), // Wisconsin
    (263, Some("America/Toronto")), // Quebec
    (264, Some("America/Anguilla")), // Anguilla
    (267, Some("America/New_York")), // Pennsylvania
    (268, Some("America/Antigua")), // Antigua and Barbuda
    (269, Some("America/New_York")), // Michigan
    (270, None), // Kentucky: Eastern and Central
    (272, Some("America/New_York")), // Pennsylvania
    (274, Some("America/Chicago")), // Wisconsin
    (276, Some("America/New_York")), // Virginia
    (279, Some("America/Los_Angeles")), // California
    (281, Some("America/Chicago")), // Texas
    (283, Some("America/New_York")), // Ohio
    (284, Some("America/Tortola")), // British Virgin Islands
    (289, Some("America/Toronto")), // Ontario
    (301, Some("America/New_York")), // Maryland
    (302, Some("America/New_York")), // Delaware
    (303, Some("America/Denver")), // Colorado
    (304, Some("America/New_York")), // West Virginia
    (305, Some("America/New_York")), // Florida
    (306, None), // Saskatchewan: no DST, but Lloydminster keeps Alberta time
    (307, Some("America/Denver")), // Wyoming
    (308, None), // Nebraska: western counties on Mountain
    (309, Some("America/Chicago")), // Illinois
    (310, Some("America/Los_Angeles")), // California
    (312, Some("America/Chicago")), // Illinois
    (313, Some("America/New_York")), // Michigan
    (314, Some("America/Chicago")), // Missouri
    (315, Some("America/New_York")), // New York
    (316, Some("America/Chicago")), // Kansas
    (317, Some("America/New_York")), // Indiana (Eastern)
    (318, Some("America/Chicago")), // Louisiana
    (319, Some("America/Chicago")), // Iowa
    (320, Some("America/Chicago")), // Minnesota
    (321, Some("America/New_York")), // Florida
    (323, Some("America/Los_Angeles")), // California
    (324, Some("America/New_York")), // Florida
    (325, Some("America/Chicago")), // Texas
    (326, Some("America/New_York")), // Ohio
    (327, Some("America/Chicago")), // Arkansas
    (329, Some("America/New_York")), // New York
    (330, Some("America/New_York")), // Ohio
    (331, Some("America/Chicago")), // Illinois
    (332, Some("America/New_York")), // New York
    (334, Some("America/Chicago")), // Alabama
    (336, Some("America/New_York")), // North Carolina
    (337, Some("America/Chicago")), // Louisiana
    (339, Some("America/New_York")), // Massachusetts
    (340, Some("America/St_Thomas")), // US Virgin Islands
    (341, Some("America/Los_Angeles")), // California
    (343, Some("America/Toronto")), // Ontario
    (345, Some("America/Cayman")), // Cayman Islands
    (346, Some("America/Chicago")), // Texas
    (347, Some("America/New_York")), // New York
    (350, Some("America/Los_Angeles")), // California
    (351, Some("America/New_York")), // Massachusetts
    (352, Some("America/New_York")), // Florida
    (353, Some("America/Chicago")), // Wisconsin
    (354, Some("America/Toronto")), // Quebec
    (360, Some("America/Los_Angeles")), // Washington
    (361, Some("America/Chicago")), // Texas
    (363, Some("America/New_York")), // New York
    (364, None), // Kentucky: Eastern and Central
    (365, Some("America/Toronto")), // Ontario
    (367, None), // Quebec: eastern Cote-Nord on Atlantic time
    (368, Some("America/Edmonton")), // Alberta
    (369, Some("America/Los_Angeles")), // California
    (380, Some("America/New_York")), // Ohio
    (382, Some("America/Toronto")), // Ontario
    (385, Some("America/Denver")), // Utah
    (386, Some("America/New_York")), // Florida
    (401, Some("America/New_York")), // Rhode Island
    (402, Some("America/Chicago")), // Nebraska
    (403, Some("America/Edmonton")), // Alberta
    (404, Some("America/New_York")), // Georgia
    (405, Some("America/Chicago")), // Oklahoma
    (406, Some("America/Denver")), // Montana
    (407, Some("America/New_York")), // Florida
    (408, Some("America/Los_Angeles")), // California
    (409, Some("America/Chicago")), // Texas
    (410, Some("America/New_York")), // Maryland
    (412, Some("America/New_York")), // Pennsylvania
    (413, Some("America/New_York")), // Massachusetts
    (414, Some("America/Chicago")), // Wisconsin
    (415, Some("America/Los_Angeles")), // California
    (416, Some("America/Toronto")), // Ontario
    (417, Some("America/Chicago")), // Missouri
    (418, None), // Quebec: eastern Cote-Nord on Atlantic time
    (419, Some("America/New_York")), // Ohio
    (423, None), // Tennessee: Eastern and Central counties
    (424, Some("America/Los_Angeles")), // California
    (425, Some("America/Los_Angeles")), // Washington
    (430, Some("America/Chicago")), // Texas
    (431, Some("America/Winnipeg")), // Manitoba
    (432, Some("America/Chicago")), // Texas
    (434, Some("America/New_York")), // Virginia
    (435, Some("America/Denver")), // Utah
    (436, Some("America/New_York")), // Ohio
    (437, Some("America/Toronto")), // Ontario
    (438, Some("America/Toronto")), // Quebec
    (440, Some("America/New_York")), // Ohio
    (441, Some("Atlantic/Bermuda")), // Bermuda
    (442, Some("America/Los_Angeles")), // California
    (443, Some("America/New_York")), // Maryland
    (445, Some("America/New_York")), // Pennsylvania
    (447, Some("America/Chicago")), // Illinois
    (448, None), // Florida panhandle: Eastern and Central
    (450, Some("America/Toronto")), // Quebec
    (458, None), // Oregon: Malheur County on Mountain
    (463, Some("America/New_York")), // Indiana (Eastern)
    (464, Some("America/Chicago")), // Illinois
    (468, Some("America/Toronto")), // Quebec
    (469, Some("America/Chicago")), // Texas
    (470, Some("America/New_York")), // Georgia
    (472, Some("America/New_York")), // North Carolina
    (473, Some("America/Grenada")), // Grenada
    (474, None), // Saskatchewan: no DST, but Lloydminster keeps Alberta time
    (475, Some("America/New_York")), // Connecticut
    (478, Some("America/New_York")), // Georgia
    (479, Some("America/Chicago")), // Arkansas
    (480, Some("America/Phoenix")), // Arizona (no DST)
    (484, Some("America/New_York")), // Pennsylvania
    (501, Some("America/Chicago")), // Arkansas
    (502, Some("America/New_York")), // Kentucky (Eastern)
    (503, Some("America/Los_Angeles")), // Oregon
    (504, Some("America/Chicago")), // Louisiana
    (505, Some("America/Denver")), // New Mexico
    (506, Some("America/Moncton")), // New Brunswick
    (507, Some("America/Chicago")), // Minnesota
    (508, Some("America/New_York")), // Massachusetts
    (509, Some("America/Los_Angeles")), // Washington
    (510, Some("America/Los_Angeles")), // California
    (512, Some("America/Chicago")), // Texas
    (513, Some("America/New_York")), // Ohio
    (514, Some("America/Toronto")), // Quebec
    (515, Some("America/Chicago")), // Iowa
    (516, Some("America/New_York")), // New York
    (517, Some("America/New_York")), // Michigan
    (518, Some("America/New_York")), // New York
    (519, Some("America/Toronto")), // Ontario
    (520, Some("America/Phoenix")), // Arizona (no DST)
    (530, Some("America/Los_Angeles")), // California
    (531, Some("America/Chicago")), // Nebraska
    (534, Some("America/Chicago")), // Wisconsin
    (539, Some("America/Chicago")), // Oklahoma
    (540, Some("America/New_York")), // Virginia
    (541, None), // Oregon: Malheur County on Mountain
    (548, Some("America/Toronto")), // Ontario
    (551, Some("America/New_York")), // New Jersey
    (557, Some("America/Chicago")), // Missouri
    (559, Some("America/Los_Angeles")), // California
    (561, Some("America/New_York")), // Florida
    (562, Some("America/Los_Angeles")), // California
    (563, Some("America/Chicago")), // Iowa
    (564, Some("America/Los_Angeles")), // Washington
    (567, Some("America/New_York")), // Ohio
    (570, Some("America/New_York")), // Pennsylvania
    (571, Some("America/New_York")), // Virginia
    (572, Some("America/Chicago")), // Oklahoma
    (573, Some("America/Chicago")), // Missouri
    (574, None), // Indiana: Eastern and Central counties
    (575, Some("America/Denver")), // New Mexico
    (579, Some("America/Toronto")), // Quebec
    (580, Some("America/Chicago")), // Oklahoma
    (581, None), // Quebec: eastern Cote-Nord on Atlantic time
    (582, Some("America/New_York")), // Pennsylvania
    (584, Some("America/Winnipeg")), // Manitoba
    (585, Some("America/New_York")), // New York
    (586, Some("America/New_York")), // Michigan
    (587, Some("America/Edmonton")), // Alberta
    (601, Some("America/Chicago")), // Mississippi
    (602, Some("America/Phoenix")), // Arizona (no DST)
    (603, Some("America/New_York")), // New Hampshire
    (604, Some("America/Vancouver")), // British Columbia: Vancouver and Lower Mainland
    (605, None), // South Dakota: Central and Mountain
    (606, None), // Kentucky: Eastern and Central
    (607, Some("America/New_York")), // New York
    (608, Some("America/Chicago")), // Wisconsin
    (609, Some("America/New_York")), // New Jersey
    (610, Some("America/New_York")), // Pennsylvania
    (612, Some("America/Chicago")), // Minnesota
    (613, Some("America/Toronto")), // Ontario
    (614, Some("America/New_York")), // Ohio
    (615, Some("America/Chicago")), // Tennessee (Central)
    (616, Some("America/New_York")), // Michigan
    (617, Some("America/New_York")), // Massachusetts
    (618, Some("America/Chicago")), // Illinois
    (619, Some("America/Los_Angeles")), // California
    (620, None), // Kansas: western counties on Mountain
    (623, Some("America/Phoenix")), // Arizona (no DST)
    (624, Some("America/New_York")), // New York
    (626, Some("America/Los_Angeles")), // California
    (628, Some("America/Los_Angeles")), // California
    (629, Some("America/Chicago")), // Tennessee (Central)
    (630, Some("America/Chicago")), // Illinois
    (631, Some("America/New_York")), // New York
    (636, Some("America/Chicago")), // Missouri
    (639, None), // Saskatchewan: no DST, but Lloydminster keeps Alberta time
    (640, Some("America/New_York")), // New Jersey
    (641, Some("America/Chicago")), // Iowa
    (645, Some("America/New_York")), // Florida
    (646, Some("America/New_York")), // New York
    (647, Some("America/Toronto")), // Ontario
    (649, Some("America/Grand_Turk")), // Turks and Caicos Islands
    (650, Some("America/Los_Angeles")), // California
    (651, Some("America/Chicago")), // Minnesota
    (656, Some("America/New_York")), // Florida
    (657, Some("America/Los_Angeles")), // California
    (658, Some("America/Jamaica")), // Jamaica
    (659, Some("America/Chicago")), // Alabama
    (660, Some("America/Chicago")), // Missouri
    (661, Some("America/Los_Angeles")), // California
    (662, Some("America/Chicago")), // Mississippi
    (664, Some("America/Montserrat")), // Montserrat
    (667, Some("America/New_York")), // Maryland
    (669, Some("America/Los_Angeles")), // California
    (670, Some("Pacific/Saipan")), // Northern Mariana Islands
    (671, Some("Pacific/Guam")), // Guam
    (672, None), // British Columbia: Pacific, Mountain and no-DST Peace River
    (678, Some("America/New_York")), // Georgia
    (679, Some("America/New_York")), // Michigan
    (680, Some("America/New_York")), // New York
    (681, Some("America/New_York")), // West Virginia
    (682, Some("America/Chicago")), // Texas
    (683, Some("America/Toronto")), // Ontario
    (684, Some("Pacific/Pago_Pago")), // American Samoa
    (689, Some("America/New_York")), // Florida
    (701, None), // North Dakota: Central and Mountain
    (702, Some("America/Los_Angeles")), // Nevada
    (703, Some("America/New_York")), // Virginia
    (704, Some("America/New_York")), // North Carolina
    (705, Some("America/Toronto")), // Ontario
    (706, Some("America/New_York")), // Georgia
    (707, Some("America/Los_Angeles")), // California
    (708, Some("America/Chicago")), // Illinois
    (709, None), // Newfoundland and Labrador: Newfoundland and Atlantic time
    (712, Some("America/Chicago")), // Iowa
    (713, Some("America/Chicago")), // Texas
    (714, Some("America/Los_Angeles")), // California
    (715, Some("America/Chicago")), // Wisconsin
    (716, Some("America/New_York")), // New York
    (717, Some("America/New_York")), // Pennsylvania
    (718, Some("America/New_York")), // New York
    (719, Some("America/Denver")), // Colorado
    (720, Some("America/Denver")), // Colorado
    (721, Some("America/Lower_Princes")), // Sint Maarten
    (724, Some("America/New_York")), // Pennsylvania
    (725, Some("America/Los_Angeles")), // Nevada
    (726, Some("America/Chicago")), // Texas
    (727, Some("America/New_York")), // Florida
    (728, Some("America/New_York")), // Florida
    (730, Some("America/Chicago")), // Illinois
    (731, Some("America/Chicago")), // Tennessee (Central)
    (732, Some("America/New_York")), // New Jersey
    (734, Some("America/New_York")), // Michigan
    (737, Some("America/Chicago")), // Texas
    (738, Some("America/Los_Angeles")), // California
    (740, Some("America/New_York")), // Ohio
    (742, Some("America/Toronto")), // Ontario
    (743, Some("America/New_York")), // North Carolina
    (747, Some("America/Los_Angeles")), // California
    (753, Some("America/Toronto")), // Ontario
    (754, Some("America/New_York")), // Florida
    (757, Some("America/New_York")), // Virginia
    (758, Some("America/St_Lucia")), // Saint Lucia
    (760, Some("America/Los_Angeles")), // California
    (762, Some("America/New_York")), // Georgia
    (763, Some("America/Chicago")), // Minnesota
    (765, Some("America/New_York")), // Indiana (Eastern)
    (767, Some("America/Dominica")), // Dominica
    (769, Some("America/Chicago")), // Mississippi
    (770, Some("America/New_York")), // Georgia
    (771, Some("America/New_York")), // District of Columbia
    (772, Some("America/New_York")), // Florida
    (773, Some("America/Chicago")), // Illinois
    (774, Some("America/New_York")), // Massachusetts
    (775, None), // Nevada: West Wendover on Mountain
    (778, None), // British Columbia: Pacific, Mountain and no-DST Peace River
    (779, Some("America/Chicago")), // Illinois
    (780, Some("America/Edmonton")), // Alberta
    (781, Some("America/New_York")), // Massachusetts
    (782, Some("America/Halifax")), // Nova Scotia and Prince Edward Island
    (784, Some("America/St_Vincent")), // Saint Vincent and the Grenadines
    (785, None), // Kansas: western counties on Mountain
    (786, Some("America/New_York")), // Florida
    (787, Some("America/Puerto_Rico")), // Puerto Rico
    (801, Some("America/Denver")), // Utah
    (802, Some("America/New_York")), // Vermont
    (803, Some("America/New_York")), // South Carolina
    (804, Some("America/New_York")), // Virginia
    (805, Some("America/Los_Angeles")), // California
    (806, Some("America/Chicago")), // Texas
    (807, None), // Ontario: northwestern Ontario on Central
    (808, Some("Pacific/Honolulu")), // Hawaii
    (809, Some("America/Santo_Domingo")), // Dominican Republic
    (810, Some("America/New_York")), // Michigan
    (812, None), // Indiana: Eastern and Central counties
    (813, Some("America/New_York")), // Florida
    (814, Some("America/New_York")), // Pennsylvania
    (815, Some("America/Chicago")), // Illinois
    (816, Some("America/Chicago")), // Missouri
    (817, Some("America/Chicago")), // Texas
    (818, Some("America/Los_Angeles")), // California
    (819, Some("America/Toronto")), // Quebec
    (820, Some("America/Los_Angeles")), // California
    (825, Some("America/Edmonton")), // Alberta
    (826, Some("America/New_York")), // Virginia
    (828, Some("America/New_York")), // North Carolina
    (829, Some("America/Santo_Domingo")), // Dominican Republic
    (830, Some("America/Chicago")), // Texas
    (831, Some("America/Los_Angeles")), // California
    (832, Some("America/Chicago")), // Texas
    (835, Some("America/New_York")), // Pennsylvania
    (837, Some("America/Los_Angeles")), // California
    (838, Some("America/New_York")), // New York
    (839, Some("America/New_York")), // South Carolina
    (840, Some("America/Los_Angeles")), // California
    (843, Some("America/New_York")), // South Carolina
    (845, Some("America/New_York")), // New York
    (847, Some("America/Chicago")), // Illinois
    (848, Some("America/New_York")), // New Jersey
    (849, Some("America/Santo_Domingo")), // Dominican Republic
    (850, None), // Florida panhandle: Eastern and Central
    (854, Some("America/New_York")), // South Carolina
    (856, Some("America/New_York")), // New Jersey
    (857, Some("America/New_York")), // Massachusetts
    (858, Some("America/Los_Angeles")), // California
    (859, Some("America/New_York")), // Kentucky (Eastern)
    (860, Some("America/New_York")), // Connecticut
    (861, Some("America/Chicago")), // Illinois
    (862, Some("America/New_York")), // New Jersey
    (863, Some("America/New_York")), // Florida
    (864, Some("America/New_York")), // South Carolina
    (865, Some("America/New_York")), // Tennessee (Eastern)
    (867, None), // Yukon, Northwest Territories, Nunavut
    (868, Some("America/Port_of_Spain")), // Trinidad and Tobago
    (869, Some("America/St_Kitts")), // Saint Kitts and Nevis
    (870, Some("America/Chicago")), // Arkansas
    (872, Some("America/Chicago")), // Illinois
    (873, Some("America/Toronto")), // Quebec
    (876, Some("America/Jamaica")), // Jamaica
    (878, Some("America/New_York")), // Pennsylvania
    (879, None), // Newfoundland and Labrador: Newfoundland and Atlantic time
    (901, Some("America/Chicago")), // Tennessee (Central)
    (902, Some("America/Halifax")), // Nova Scotia and Prince Edward Island
    (903, Some("America/Chicago")), // Texas
    (904, Some("America/New_York")), // Florida
    (905, Some("America/Toronto")), // Ontario
    (906, None), // Michigan: Upper Peninsula, Eastern and Central
    (907, None), // Alaska: Anchorage and Aleutian time
    (908, Some("America/New_York")), // New Jersey
    (909, Some("America/Los_Angeles")), // California
    (910, Some("America/New_York")), // North Carolina
    (912, Some("America/New_York")), // Georgia
    (913, Some("America/Chicago")), // Kansas
    (914, Some("America/New_York")), // New York
    (915, Some("America/Denver")), // Texas: El Paso and Hudspeth (Mountain)
    (916, Some("America/Los_Angeles")), // California
    (917, Some("America/New_York")), // New York
    (918, Some("America/Chicago")), // Oklahoma
    (919, Some("America/New_York")), // North Carolina
    (920, Some("America/Chicago")), // Wisconsin
    (924, Some("America/Chicago")), // Minnesota
    (925, Some("America/Los_Angeles")), // California
    (928, None), // Arizona: Navajo Nation keeps DST
    (929, Some("America/New_York")), // New York
    (930, None), // Indiana: Eastern and Central counties
    (931, None), // Tennessee: Eastern and Central counties
    (934, Some("America/New_York")), // New York
    (936, Some("America/Chicago")), // Texas
    (937, Some("America/New_York")), // Ohio
    (938, Some("America/Chicago")), // Alabama
    (939, Some("America/Puerto_Rico")), // Puerto Rico
    (940, Some("America/Chicago")), // Texas
    (941, Some("America/New_York")), // Florida
    (942, Some("America/Toronto")), // Ontario
    (943, Some("America/New_York")), // Georgia
    (945, Some("America/Chicago")), // Texas
    (947, Some("America/New_York")), // Michigan
    (948, Some("America/New_York")), // Virginia
    (949, Some("America/Los_Angeles")), // California
    (951, Some("America/Los_Angeles")), // California
    (952, Some("America/Chicago")), // Minnesota
    (954, Some("America/New_York")), // Florida
    (956, Some("America/Chicago")), // Texas
    (959, Some("America/New_York")), // Connecticut
    (970, Some("America/Denver")), // Colorado
    (971, Some("America/Los_Angeles")), // Oregon
    (972, Some("America/Chicago")), // Texas
    (973, Some("America/New_York")), // New Jersey
    (975, Some("America/Chicago")), // Missouri
    (978, Some("America/New_York")), // Massachusetts
    (979, Some("America/Chicago")), // Texas
    (980, Some("America/New_York")), // North Carolina
    (983, Some("America/Denver")), // Colorado
    (984, Some("America/New_York")), // North Carolina
    (985, Some("America/Chicago")), // Louisiana
    (986, None), // Idaho: Pacific north, Mountain south
    (989, Some("America/New_York")), // Michigan
];

/// Countries (ISO 3166 alpha-2) with a single zone in tzdb's `zone.tab` (2025b), plus DE, MY,
/// CY and UZ whose extra zones (Busingen, Kuching, Famagusta, Samarkand) keep the same rules
/// today; sorted by code. US and CA are absent: they go through `NANP_AREA_CODES`.
pub(super) const SINGLE_ZONE_COUNTRIES: &[(&str, &str)] = &[
    ("AD", "Europe/Andorra"),
    ("AE", "Asia/Dubai"),
    ("AF", "Asia/Kabul"),
    ("AG", "America/Antigua"),
    ("AI", "America/Anguilla"),
    ("AL", "Europe/Tirane"),
    ("AM", "Asia/Yerevan"),
    ("AO", "Africa/Luanda"),
    ("AS", "Pacific/Pago_Pago"),
    ("AT", "Europe/Vienna"),
    ("AW", "America/Aruba"),
    ("AX", "Europe/Mariehamn"),
    ("AZ", "Asia/Baku"),
    ("BA", "Europe/Sarajevo"),
    ("BB", "America/Barbados"),
    ("BD", "Asia/Dhaka"),
    ("BE", "Europe/Brussels"),
    ("BF", "Africa/Ouagadougou"),
    ("BG", "Europe/Sofia"),
    ("BH", "Asia/Bahrain"),
    ("BI", "Africa/Bujumbura"),
    ("BJ", "Africa/Porto-Novo"),
    ("BL", "America/St_Barthelemy"),
    ("BM", "Atlantic/Bermuda"),
    ("BN", "Asia/Brunei"),
    ("BO", "America/La_Paz"),
    ("BQ", "America/Kralendijk"),
    ("BS", "America/Nassau"),
    ("BT", "Asia/Thimphu"),
    ("BW", "Africa/Gaborone"),
    ("BY", "Europe/Minsk"),
    ("BZ", "America/Belize"),
    ("CC", "Indian/Cocos"),
    ("CF", "Africa/Bangui"),
    ("CG", "Africa/Brazzaville"),
    ("CH", "Europe/Zurich"),
    ("CI", "Africa/Abidjan"),
    ("CK", "Pacific/Rarotonga"),
    ("CM", "Africa/Douala"),
    ("CO", "America/Bogota"),
    ("CR", "America/Costa_Rica"),
    ("CU", "America/Havana"),
    ("CV", "Atlantic/Cape_Verde"),
    ("CW", "America/Curacao"),
    ("CX", "Indian/Christmas"),
    ("CY", "Asia/Nicosia"),
    ("CZ", "Europe/Prague"),
    ("DE", "Europe/Berlin"),
    ("DJ", "Africa/Djibouti"),
    ("DK", "Europe/Copenhagen"),
    ("DM", "America/Dominica"),
    ("DO", "America/Santo_Domingo"),
    ("DZ", "Africa/Algiers"),
    ("EE", "Europe/Tallinn"),
    ("EG", "Africa/Cairo"),
    ("EH", "Africa/El_Aaiun"),
    ("ER", "Africa/Asmara"),
    ("ET", "Africa/Addis_Ababa"),
    ("FI", "Europe/Helsinki"),
    ("FJ", "Pacific/Fiji"),
    ("FK", "Atlantic/Stanley"),
    ("FO", "Atlantic/Faroe"),
    ("FR", "Europe/Paris"),
    ("GA", "Africa/Libreville"),
    ("GB", "Europe/London"),
    ("GD", "America/Grenada"),
    ("GE", "Asia/Tbilisi"),
    ("GF", "America/Cayenne"),
    ("GG", "Europe/Guernsey"),
    ("GH", "Africa/Accra"),
    ("GI", "Europe/Gibraltar"),
    ("GM", "Africa/Banjul"),
    ("GN", "Africa/Conakry"),
    ("GP", "America/Guadeloupe"),
    ("GQ", "Africa/Malabo"),
    ("GR", "Europe/Athens"),
    ("GS", "Atlantic/South_Georgia"),
    ("GT", "America/Guatemala"),
    ("GU", "Pacific/Guam"),
    ("GW", "Africa/Bissau"),
    ("GY", "America/Guyana"),
    ("HK", "Asia/Hong_Kong"),
    ("HN", "America/Tegucigalpa"),
    ("HR", "Europe/Zagreb"),
    ("HT", "America/Port-au-Prince"),
    ("HU", "Europe/Budapest"),
    ("IE", "Europe/Dublin"),
    ("IL", "Asia/Jerusalem"),
    ("IM", "Europe/Isle_of_Man"),
    ("IN", "Asia/Kolkata"),
    ("IO", "Indian/Chagos"),
    ("IQ", "Asia/Baghdad"),
    ("IR", "Asia/Tehran"),
    ("IS", "Atlantic/Reykjavik"),
    ("IT", "Europe/Rome"),
    ("JE", "Europe/Jersey"),
    ("JM", "America/Jamaica"),
    ("JO", "Asia/Amman"),
    ("JP", "Asia/Tokyo"),
    ("KE", "Africa/Nairobi"),
    ("KG", "Asia/Bishkek"),
    ("KH", "Asia/Phnom_Penh"),
    ("KM", "Indian/Comoro"),
    ("KN", "America/St_Kitts"),
    ("KP", "Asia/Pyongyang"),
    ("KR", "Asia/Seoul"),
    ("KW", "Asia/Kuwait"),
    ("KY", "America/Cayman"),
    ("LA", "Asia/Vientiane"),
    ("LB", "Asia/Beirut"),
    ("LC", "America/St_Lucia"),
    ("LI", "Europe/Vaduz"),
    ("LK", "Asia/Colombo"),
    ("LR", "Africa/Monrovia"),
    ("LS", "Africa/Maseru"),
    ("LT", "Europe/Vilnius"),
    ("LU", "Europe/Luxembourg"),
    ("LV", "Europe/Riga"),
    ("LY", "Africa/Tripoli"),
    ("MA", "Africa/Casablanca"),
    ("MC", "Europe/Monaco"),
    ("MD", "Europe/Chisinau"),
    ("ME", "Europe/Podgorica"),
    ("MF", "America/Marigot"),
    ("MG", "Indian/Antananarivo"),
    ("MK", "Europe/Skopje"),
    ("ML", "Africa/Bamako"),
    ("MM", "Asia/Yangon"),
    ("MO", "Asia/Macau"),
    ("MP", "Pacific/Saipan"),
    ("MQ", "America/Martinique"),
    ("MR", "Africa/Nouakchott"),
    ("MS", "America/Montserrat"),
    ("MT", "Europe/Malta"),
    ("MU", "Indian/Mauritius"),
    ("MV", "Indian/Maldives"),
    ("MW", "Africa/Blantyre"),
    ("MY", "Asia/Kuala_Lumpur"),
    ("MZ", "Africa/Maputo"),
    ("NA", "Africa/Windhoek"),
    ("NC", "Pacific/Noumea"),
    ("NE", "Africa/Niamey"),
    ("NF", "Pacific/Norfolk"),
    ("NG", "Africa/Lagos"),
    ("NI", "America/Managua"),
    ("NL", "Europe/Amsterdam"),
    ("NO", "Europe/Oslo"),
    ("NP", "Asia/Kathmandu"),
    ("NR", "Pacific/Nauru"),
    ("NU", "Pacific/Niue"),
    ("OM", "Asia/Muscat"),
    ("PA", "America/Panama"),
    ("PE", "America/Lima"),
    ("PH", "Asia/Manila"),
    ("PK", "Asia/Karachi"),
    ("PL", "Europe/Warsaw"),
    ("PM", "America/Miquelon"),
    ("PN", "Pacific/Pitcairn"),
    ("PR", "America/Puerto_Rico"),
    ("PW", "Pacific/Palau"),
    ("PY", "America/Asuncion"),
    ("QA", "Asia/Qatar"),
    ("RE", "Indian/Reunion"),
    ("RO", "Europe/Bucharest"),
    ("RS", "Europe/Belgrade"),
    ("RW", "Africa/Kigali"),
    ("SA", "Asia/Riyadh"),
    ("SB", "Pacific/Guadalcanal"),
    ("SC", "Indian/Mahe"),
    ("SD", "Africa/Khartoum"),
    ("SE", "Europe/Stockholm"),
    ("SG", "Asia/Singapore"),
    ("SH", "Atlantic/St_Helena"),
    ("SI", "Europe/Ljubljana"),
    ("SJ", "Arctic/Longyearbyen"),
    ("SK", "Europe/Bratislava"),
    ("SL", "Africa/Freetown"),
    ("SM", "Europe/San_Marino"),
    ("SN", "Africa/Dakar"),
    ("SO", "Africa/Mogadishu"),
    ("SR", "America/Paramaribo"),
    ("SS", "Africa/Juba"),
    ("ST", "Africa/Sao_Tome"),
    ("SV", "America/El_Salvador"),
    ("SX", "America/Lower_Princes"),
    ("SY", "Asia/Damascus"),
    ("SZ", "Africa/Mbabane"),
    ("TC", "America/Grand_Turk"),
    ("TD", "Africa/Ndjamena"),
    ("TF", "Indian/Kerguelen"),
    ("TG", "Africa/Lome"),
    ("TH", "Asia/Bangkok"),
    ("TJ", "Asia/Dushanbe"),
    ("TK", "Pacific/Fakaofo"),
    ("TL", "Asia/Dili"),
    ("TM", "Asia/Ashgabat"),
    ("TN", "Africa/Tunis"),
    ("TO", "Pacific/Tongatapu"),
    ("TR", "Europe/Istanbul"),
    ("TT", "America/Port_of_Spain"),
    ("TV", "Pacific/Funafuti"),
    ("TW", "Asia/Taipei"),
    ("TZ", "Africa/Dar_es_Salaam"),
    ("UG", "Africa/Kampala"),
    ("UY", "America/Montevideo"),
    ("UZ", "Asia/Tashkent"),
    ("VA", "Europe/Vatican"),
    ("VC", "America/St_Vincent"),
    ("VE", "America/Caracas"),
    ("VG", "America/Tortola"),
    ("VI", "America/St_Thomas"),
    ("VN", "Asia/Ho_Chi_Minh"),
    ("VU", "Pacific/Efate"),
    ("WF", "Pacific/Wallis"),
    ("WS", "Pacific/Apia"),
    ("YE", "Asia/Aden"),
    ("YT", "Indian/Mayotte"),
    ("ZA", "Africa/Johannesburg"),
    ("ZM", "Africa/Lusaka"),
    ("ZW", "Africa/Harare"),
];
